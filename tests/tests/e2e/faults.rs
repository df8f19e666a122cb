//! Git faults, each on a real server: a push refused by a server hook, a server dying in the
//! middle of a push, a remote vanishing in the middle of a fetch, a network that stalls, a
//! corrupted cache, stale lock files in the cache, a full disk, and hostile servers (an endless
//! pack, a huge refs list, a redirect to another host). Each must end with a clear error, a
//! remote exactly as it was, and a next run (fault gone) that promotes normally.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use promote_tests::{git, git_daemon};
use serde_json::json;

use crate::local::{Demo, check_promoted, ok, stage};

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure; stdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn demo_with(url: impl Fn(&Demo) -> String) -> Demo {
    let demo = Demo::new(&["dev"]);
    let url = url(&demo);
    demo.write(&[stage("dev", &url, json!({ "direct": true }))]);
    demo
}

fn file_url(demo: &Demo) -> String {
    format!("file://{}", demo.bare.display())
}

fn hook(demo: &Demo, script: &str) {
    let path = demo.bare.join("hooks/pre-receive");
    std::fs::write(&path, script).unwrap();
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&path, perms).unwrap();
}

#[test]
fn a_push_refused_by_a_server_hook_says_why_and_changes_nothing() {
    let demo = demo_with(file_url);
    let before = git(&demo.bare, &["rev-parse", "main"]);
    hook(
        &demo,
        "#!/bin/sh\necho 'policy: main is frozen until Monday' >&2\nexit 1\n",
    );
    let err = failed(&demo.promote("dev", &[], &[]));
    assert!(
        err.contains("policy: main is frozen until Monday") && err.contains("git-push"),
        "{err}"
    );
    assert_eq!(git(&demo.bare, &["rev-parse", "main"]), before);
    std::fs::remove_file(demo.bare.join("hooks/pre-receive")).unwrap();
    check_promoted(
        &demo,
        &ok(&demo.promote("dev", &["-o", "json"], &[])),
        "dev",
    );
}

#[test]
fn a_server_dying_in_the_middle_of_a_push_leaves_the_remote_as_it_was() {
    let demo = demo_with(file_url);
    let before = git(&demo.bare, &["rev-parse", "main"]);
    // receive-pack has the pack and is about to update the ref when it dies.
    hook(&demo, "#!/bin/sh\nkill -9 $PPID\nsleep 5\n");
    let err = failed(&demo.promote("dev", &[], &[]));
    assert!(err.contains("git-push") && err.contains("push"), "{err}");
    assert_eq!(git(&demo.bare, &["rev-parse", "main"]), before);
    std::fs::remove_file(demo.bare.join("hooks/pre-receive")).unwrap();
    check_promoted(
        &demo,
        &ok(&demo.promote("dev", &["-o", "json"], &[])),
        "dev",
    );
}

/// What the proxy does with a connection.
const PASS: u8 = 0;
/// Forward the client's bytes, send back `cut` bytes of the server's answer, then close both.
const CUT: u8 = 1;
/// Accept and never answer (a stalled network).
const STALL: u8 = 2;

/// A TCP proxy on 127.0.0.1 in front of `port`, whose behaviour can be switched while it runs.
struct Proxy {
    port: u16,
    mode: Arc<AtomicU8>,
}

impl Proxy {
    fn start(target: u16, cut: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(PASS));
        let m = mode.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let mode = m.load(Ordering::SeqCst);
                std::thread::spawn(move || relay(client, target, mode, cut));
            }
        });
        Proxy { port, mode }
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

fn relay(client: TcpStream, target: u16, mode: u8, cut: usize) {
    if mode == STALL {
        // Hold the connection open, reading and answering nothing.
        let mut c = client;
        let mut buf = [0u8; 4096];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_in, &mut s_out);
        let _ = s_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut s_in, mut c_out) = (server, client);
    let sent = AtomicUsize::new(0);
    let mut buf = [0u8; 4096];
    loop {
        let n = match s_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let before = sent.fetch_add(n, Ordering::SeqCst);
        if mode == CUT && before + n >= cut {
            let _ = c_out.write_all(&buf[..cut.saturating_sub(before)]);
            let _ = c_out.shutdown(std::net::Shutdown::Both);
            let _ = s_in.shutdown(std::net::Shutdown::Both);
            return;
        }
        if c_out.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = c_out.shutdown(std::net::Shutdown::Write);
}

#[test]
fn a_remote_vanishing_in_the_middle_of_a_fetch_fails_clearly() {
    let demo = Demo::new(&["dev"]);
    let daemon = git_daemon(demo.root());
    // The ref advertisement of this repository is a few hundred bytes; the pack comes after.
    let proxy = Proxy::start(daemon.port, 600);
    let url = format!("git://127.0.0.1:{}/gitops.git", proxy.port);
    demo.write(&[stage("dev", &url, json!({ "direct": true }))]);
    let before = git(&demo.bare, &["rev-parse", "main"]);
    proxy.set(CUT);
    let err = failed(&demo.promote("dev", &[], &[]));
    assert!(err.contains("git-clone") && err.contains(&url), "{err}");
    assert_eq!(git(&demo.bare, &["rev-parse", "main"]), before);
    proxy.set(PASS);
    check_promoted(
        &demo,
        &ok(&demo.promote("dev", &["-o", "json"], &[])),
        "dev",
    );
}

#[test]
fn a_stalled_network_is_given_up_on_after_promote_git_timeout() {
    let demo = Demo::new(&["dev"]);
    let daemon = git_daemon(demo.root());
    let proxy = Proxy::start(daemon.port, 0);
    let url = format!("git://127.0.0.1:{}/gitops.git", proxy.port);
    demo.write(&[stage("dev", &url, json!({ "direct": true }))]);
    proxy.set(STALL);
    let start = Instant::now();
    let err = failed(&demo.promote("dev", &[], &[("PROMOTE_GIT_TIMEOUT", "2s")]));
    assert!(
        err.contains("did not finish within 2s")
            && err.contains("PROMOTE_GIT_TIMEOUT")
            && err.contains(&url),
        "{err}"
    );
    // Generous: the point is that it ends at all, not how fast.
    assert!(start.elapsed() < Duration::from_secs(60));
    proxy.set(PASS);
    check_promoted(
        &demo,
        &ok(&demo.promote("dev", &["-o", "json"], &[])),
        "dev",
    );
}

/// The mirror directories in the demo's cache.
fn mirrors(demo: &Demo) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(demo.root().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && p.extension().is_some_and(|e| e == "git"))
        .collect()
}

#[test]
fn a_corrupted_cache_is_rebuilt() {
    let demo = Demo::new(&["dev", "test"]);
    let url = file_url(&demo);
    demo.write(&[
        stage("dev", &url, json!({ "direct": true })),
        stage("test", &url, json!({ "direct": true })),
    ]);
    check_promoted(
        &demo,
        &ok(&demo.promote("dev", &["-o", "json"], &[])),
        "dev",
    );
    // Every pack and loose object of the mirror overwritten with garbage.
    for m in mirrors(&demo) {
        for dir in ["objects/pack"] {
            for f in std::fs::read_dir(m.join(dir)).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "pack" || e == "idx") {
                    std::fs::write(&p, b"not a pack").unwrap();
                }
            }
        }
    }
    let out = demo.promote("test", &["-o", "json"], &[]);
    let result = ok(&out);
    check_promoted(&demo, &result, "test");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("rebuilt"), "the rebuild is reported: {err}");
}

#[test]
fn stale_lock_files_and_packs_in_the_cache_are_removed_and_fresh_ones_kept() {
    let demo = demo_with(file_url);
    check_promoted(
        &demo,
        &ok(&demo.promote("dev", &["-o", "json"], &[])),
        "dev",
    );
    let mirror = mirrors(&demo).pop().unwrap();
    let locks = [
        mirror.join("shallow.lock"),
        mirror.join("packed-refs.lock"),
        mirror.join("refs/remotes/origin/main.lock"),
        // A half-written pack of a fetch killed with it.
        mirror.join("objects/pack/tmp_pack_Ab12Cd"),
    ];
    // Left by a git that was killed an hour ago: removed.
    for l in &locks {
        std::fs::write(l, b"").unwrap();
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(l)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    // Another commit upstream, so that the next promotion must fetch.
    let work = demo.root().join("work");
    git(
        demo.root(),
        &[
            "clone",
            "-q",
            demo.bare.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
    );
    std::fs::write(work.join("README"), "x\n").unwrap();
    git(&work, &["add", "README"]);
    git(
        &work,
        &[
            "-c",
            "user.name=u",
            "-c",
            "user.email=u@x",
            "commit",
            "-qm",
            "readme",
        ],
    );
    git(&work, &["push", "-q", "origin", "main"]);
    let again = ok(&demo.promote("dev", &["-o", "json"], &[]));
    assert_eq!(again["phase"], "Succeeded");
    for l in &locks {
        assert!(!l.exists(), "{} was left", l.display());
    }
    // A lock a live git might hold (just made) is left alone.
    std::fs::write(&locks[1], b"").unwrap();
    ok(&demo.promote("dev", &["-o", "json"], &[]));
    assert!(locks[1].exists(), "a fresh lock file was removed");
    std::fs::remove_file(&locks[1]).unwrap();
}

#[test]
fn a_full_disk_fails_clearly_and_leaves_the_remote_as_it_was() {
    assert!(
        nix_is_root(),
        "this test mounts a 256 KB tmpfs and needs root (CI runs as root); run scripts/test as root"
    );
    let demo = demo_with(file_url);
    let before = git(&demo.bare, &["rev-parse", "main"]);
    let small = demo.root().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let mount = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
        .arg(&small)
        .status()
        .unwrap();
    assert!(mount.success(), "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small.clone());
    // Fill it, leaving a little room: the cache directory can be made, the mirror cannot.
    let _ = std::fs::write(small.join("filler"), vec![0u8; 200 * 1024]);
    let out = demo.promote(
        "dev",
        &["--cache-dir", small.join("cache").to_str().unwrap()],
        &[],
    );
    let err = failed(&out);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(git(&demo.bare, &["rev-parse", "main"]), before);
    check_promoted(
        &demo,
        &ok(&demo.promote("dev", &["-o", "json"], &[])),
        "dev",
    );
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

// ---------------------------------------------------------------------------------------------
// hostile servers: smart HTTP in front of the real `git http-backend`, answering one command of
// protocol v2 in its own way.

/// How the hostile server answers.
const HONEST: u8 = 0;
/// The fetch command gets a pack that never ends (valid objects, over and over).
const ENDLESS_PACK: u8 = 1;
/// The ls-refs command gets the real refs and 200,000 more.
const HUGE_REFS: u8 = 2;

fn pkt(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:04x}", data.len() + 4).into_bytes();
    out.extend_from_slice(data);
    out
}

/// One packed blob of 256 KiB that does not compress (its pack entry: header and deflated
/// content), cut from a real pack.
fn pack_entry(repo: &std::path::Path) -> Vec<u8> {
    let run = |args: &[&str], input: &[u8]| {
        let mut child = std::process::Command::new("git")
            .args(args)
            .current_dir(repo)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap().stdout
    };
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    let noise: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let oid = run(&["hash-object", "-w", "--stdin"], &noise);
    let pack = run(&["pack-objects", "--stdout", "-q"], &oid);
    pack[12..pack.len() - 20].to_vec()
}

struct Hostile {
    port: u16,
    mode: Arc<AtomicU8>,
    /// Bytes of endless pack written so far.
    sent: Arc<AtomicUsize>,
}

impl Hostile {
    fn start(root: std::path::PathBuf, entry: Vec<u8>, mode: u8) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(mode));
        let sent = Arc::new(AtomicUsize::new(0));
        let (m, s) = (mode.clone(), sent.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, entry, mode, sent) = (root.clone(), entry.clone(), m.clone(), s.clone());
                std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                    let Some(req) = promote_tests::read_request(&mut reader) else {
                        return;
                    };
                    let has = |cmd: &[u8]| req.body.windows(cmd.len()).any(|w| w == cmd);
                    let mut stream = stream;
                    match mode.load(Ordering::SeqCst) {
                        ENDLESS_PACK if has(b"command=fetch") => {
                            endless(&mut stream, &entry, &sent)
                        }
                        HUGE_REFS if has(b"command=ls-refs") => {
                            let (status, headers, mut body) =
                                promote_tests::git_http_backend(&root, "anonymous", &req);
                            // The real answer ends with a flush packet: put the junk before it.
                            let main = String::from_utf8_lossy(&body[4..44]).into_owned();
                            body.truncate(body.len() - 4);
                            for i in 0..200_000 {
                                body.extend(pkt(
                                    format!("{main} refs/tags/junk-{i:06}\n").as_bytes()
                                ));
                            }
                            body.extend_from_slice(b"0000");
                            promote_tests::respond(&mut stream, &status, &headers, &body);
                        }
                        _ => {
                            let (status, headers, body) =
                                promote_tests::git_http_backend(&root, "anonymous", &req);
                            promote_tests::respond(&mut stream, &status, &headers, &body);
                        }
                    }
                });
            }
        });
        Hostile { port, mode, sent }
    }
}

/// A fetch answer whose pack claims a million objects (256 GiB) and sends them, at about 6 MB/s
/// (the test's disk is not the point), until the client leaves.
fn endless(stream: &mut TcpStream, entry: &[u8], sent: &AtomicUsize) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-result\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
    let mut start = head.as_bytes().to_vec();
    start.extend(pkt(b"packfile\n"));
    start.extend(pkt(b"\x01PACK\x00\x00\x00\x02\x00\x0f\x42\x40"));
    if stream.write_all(&start).is_err() {
        return;
    }
    // Side-band packets of up to 65,515 bytes of data each.
    let mut packets = Vec::new();
    for piece in entry.chunks(65_515) {
        let mut data = vec![1u8];
        data.extend_from_slice(piece);
        packets.push(pkt(&data));
    }
    for packet in packets.iter().cycle() {
        if stream.write_all(packet).is_err() {
            return;
        }
        sent.fetch_add(packet.len(), Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every file under `dir` whose name starts with `prefix`.
fn files_named(dir: &std::path::Path, prefix: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if e.file_name().to_string_lossy().starts_with(prefix) {
                found.push(p);
            }
        }
    }
    found
}

#[test]
fn an_endless_pack_is_cut_off_at_the_deadline_and_leaves_nothing_behind() {
    let demo = Demo::new(&["dev"]);
    let server = Hostile::start(demo.root().to_owned(), pack_entry(&demo.bare), ENDLESS_PACK);
    let url = format!("http://127.0.0.1:{}/gitops.git", server.port);
    demo.write(&[stage("dev", &url, json!({ "direct": true }))]);
    let before = git(&demo.bare, &["rev-parse", "main"]);
    let err = failed(&demo.promote("dev", &[], &[("PROMOTE_GIT_TIMEOUT", "3s")]));
    assert!(
        err.contains("did not finish within 3s") && err.contains("the remote was not changed"),
        "{err}"
    );
    assert!(
        server.sent.load(Ordering::SeqCst) > 0,
        "the pack was never sent"
    );
    // No git of ours keeps downloading (and filling the disk) after the promotion gave up.
    std::thread::sleep(Duration::from_millis(500));
    let settled = server.sent.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        server.sent.load(Ordering::SeqCst),
        settled,
        "a git process is still reading the endless pack"
    );
    // The half-written pack is gone from the cache.
    let cache = demo.root().join("cache");
    assert_eq!(
        files_named(&cache, "tmp_pack_"),
        Vec::<std::path::PathBuf>::new()
    );
    assert_eq!(git(&demo.bare, &["rev-parse", "main"]), before);
    server.mode.store(HONEST, Ordering::SeqCst);
    check_promoted(
        &demo,
        &ok(&demo.promote("dev", &["-o", "json"], &[])),
        "dev",
    );
}

#[test]
fn a_huge_refs_list_is_read_and_the_promotion_lands() {
    let demo = Demo::new(&["dev"]);
    let server = Hostile::start(demo.root().to_owned(), Vec::new(), HUGE_REFS);
    let url = format!("http://127.0.0.1:{}/gitops.git", server.port);
    demo.write(&[stage("dev", &url, json!({ "direct": true }))]);
    let start = Instant::now();
    check_promoted(
        &demo,
        &ok(&demo.promote("dev", &["-o", "json"], &[])),
        "dev",
    );
    eprintln!(
        "promoted past 200,000 advertised refs in {:?}",
        start.elapsed()
    );
}

#[test]
fn a_redirect_to_another_host_never_takes_the_credentials_along() {
    const CANARY: &str = "CANARY-redirect-5d1e";
    let demo = Demo::new(&["dev"]);
    // The other host (another port of 127.0.0.1: git scopes credentials by host and port) asks
    // for the same credentials.
    let other = promote_tests::git_http(demo.root(), Some(("promoter", CANARY)));
    let to = other.port;
    let redirector = promote_tests::HttpServer::start(move |req| {
        (
            "302 Found".into(),
            vec![(
                "Location".into(),
                format!("http://127.0.0.1:{to}{}", req.target),
            )],
            Vec::new(),
        )
    });
    let url = format!(
        "http://promoter:{CANARY}@127.0.0.1:{}/gitops.git",
        redirector.port
    );
    demo.write(&[stage("dev", &url, json!({ "direct": true }))]);
    let before = git(&demo.bare, &["rev-parse", "main"]);
    let out = demo.promote("dev", &[], &[]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success()
            && all.contains(&format!(
                "the server redirected to http://127.0.0.1:{to}, another host"
            )),
        "{all}"
    );
    assert!(!all.contains(CANARY), "{all}");
    let sent: Vec<_> = other
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter_map(|r| r.headers.get("authorization").cloned())
        .collect();
    assert!(
        sent.is_empty(),
        "credentials for 127.0.0.1:{} went to 127.0.0.1:{to}: {sent:?}",
        redirector.port
    );
    assert_eq!(git(&demo.bare, &["rev-parse", "main"]), before);
}

#[test]
fn a_promotion_that_fails_after_its_push_says_the_push_landed() {
    let demo = Demo::new(&["dev"]);
    let mut s = stage("dev", &file_url(&demo), json!({ "direct": true }));
    s["spec"]["promotionTemplate"]["spec"]["steps"]
        .as_array_mut()
        .unwrap()
        .push(json!({"uses": "fail", "config": {"message": "gate closed"}}));
    demo.write(&[s]);
    let err = failed(&demo.promote("dev", &[], &[]));
    let pushed = git(&demo.bare, &["rev-parse", "main"]);
    assert!(
        err.contains(&format!(
            "failed: gate closed; already done before it ended: push pushed commit {}",
            pushed.trim()
        )) && err.contains("kubectl promote refresh"),
        "{err}"
    );
}
