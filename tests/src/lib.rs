#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)] // test support code: failing loudly is the point
//! Helpers for the end-to-end tests in `tests/e2e/`: the workspace's binaries (built by
//! `cargo build --workspace --bins`, which the README's test command runs first), throwaway Git
//! repositories, and real Git servers on 127.0.0.1 (`git daemon`, smart HTTP through
//! `git http-backend` with basic auth, sshd), plus a tiny HTTP server for faking REST APIs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Path of a workspace binary in the same target directory as the running test.
pub fn bin(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the test binary: {e}"))?;
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .ok_or_else(|| format!("unexpected test binary location {}", exe.display()))?;
    let path = profile_dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is not built: run `cargo build --workspace --bins` first",
            path.display()
        ))
    }
}

/// Run git in `dir`; panics with stderr on failure (tests only).
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "seed")
        .env("GIT_AUTHOR_EMAIL", "seed@example.com")
        .env("GIT_COMMITTER_NAME", "seed")
        .env("GIT_COMMITTER_EMAIL", "seed@example.com")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Create `root/<name>.git`, a bare repository whose `main` holds `files`.
pub fn bare_repo(root: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let seed = root.join(format!("{name}-seed"));
    std::fs::create_dir_all(&seed).unwrap_or_else(|e| panic!("{e}"));
    git(&seed, &["init", "-q", "-b", "main"]);
    for (p, c) in files {
        let path = seed.join(p);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(path, c).unwrap_or_else(|e| panic!("{e}"));
    }
    git(&seed, &["add", "-A"]);
    git(&seed, &["commit", "-q", "-m", "seed"]);
    let bare = root.join(format!("{name}.git"));
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            seed.to_str().unwrap_or_default(),
            bare.to_str().unwrap_or_default(),
        ],
    );
    for (k, v) in [
        ("uploadpack.allowFilter", "true"),
        ("uploadpack.allowAnySHA1InWant", "true"),
        ("http.receivepack", "true"),
        ("daemon.receivepack", "true"),
    ] {
        git(&bare, &["config", k, v]);
    }
    bare
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A free port below the kernel's ephemeral range, for a server that another process binds later:
/// a port from the ephemeral range can be taken meanwhile by any outgoing connection.
pub fn reserved_port() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default()
        ^ std::process::id();
    for i in 0..2000u32 {
        let port = 20_000 + ((seed.wrapping_add(i.wrapping_mul(7919))) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    free_port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on 127.0.0.1:{port}");
}

/// A child process killed on drop.
pub struct Server {
    child: Child,
    /// Port it listens on.
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `git daemon` serving every repository under `root` (push enabled), on 127.0.0.1.
pub fn git_daemon(root: &Path) -> Server {
    let port = free_port();
    let child = promote_sandbox::demo::git_daemon_command(root, port)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("git daemon: {e}"));
    wait_for_port(port);
    Server { child, port }
}

/// sshd on 127.0.0.1 with a throwaway host key, accepting `key` for the current user; returns the
/// server and a `GIT_SSH_COMMAND` that reaches it.
pub fn sshd(dir: &Path) -> Result<(Server, String), String> {
    let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .ok_or("sshd is not installed: scripts/test installs openssh-server")?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let host_key = dir.join("host_key");
    let user_key = dir.join("user_key");
    for k in [&host_key, &user_key] {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(k)
            .status()
            .map_err(|e| e.to_string())?;
        if !st.success() {
            return Err("ssh-keygen failed".into());
        }
    }
    let authorized = dir.join("authorized_keys");
    std::fs::copy(dir.join("user_key.pub"), &authorized).map_err(|e| e.to_string())?;
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\nUsePAM no\nPermitRootLogin yes\nPidFile {}\n",
            host_key.display(),
            authorized.display(),
            dir.join("sshd.pid").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    wait_for_port(port);
    let ssh = format!(
        "ssh -i {} -p {port} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o LogLevel=ERROR",
        user_key.display()
    );
    Ok((Server { child, port }, ssh))
}

/// One HTTP request as the test servers see it.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, lowercase names.
    pub headers: BTreeMap<String, String>,
    /// Body (chunked bodies decoded).
    pub body: Vec<u8>,
}

/// Read one HTTP/1.1 request (for servers that answer in their own way, e.g. streaming).
pub fn read_request(stream: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    stream.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        stream.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            stream.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            stream.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = headers
        .get("content-length")
        .and_then(|n| n.parse::<usize>().ok())
    {
        body = vec![0; n];
        stream.read_exact(&mut body).ok()?;
    }
    Some(Request {
        method,
        target,
        headers,
        body,
    })
}

/// Write one complete HTTP/1.1 answer and mark the connection closed.
pub fn respond(stream: &mut TcpStream, status: &str, headers: &[(String, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

/// A minimal HTTP/1.1 server on 127.0.0.1 running `handler` on a thread per connection.
pub struct HttpServer {
    /// Port it listens on.
    pub port: u16,
    /// Every request received, in order.
    pub requests: Arc<Mutex<Vec<Request>>>,
}

impl HttpServer {
    /// Start serving.
    pub fn start<F>(handler: F) -> Self
    where
        F: Fn(&Request) -> (String, Vec<(String, String)>, Vec<u8>) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = handler.clone();
                let log = log.clone();
                std::thread::spawn(move || {
                    let Ok(clone) = stream.try_clone() else {
                        return;
                    };
                    let mut reader = BufReader::new(clone);
                    let mut stream = stream;
                    if let Some(req) = read_request(&mut reader) {
                        let (status, headers, body) = handler(&req);
                        if let Ok(mut l) = log.lock() {
                            l.push(req);
                        }
                        respond(&mut stream, &status, &headers, &body);
                    }
                });
            }
        });
        Self { port, requests }
    }
}

/// Smart HTTP through `git http-backend` (CGI) for the repositories under `root`, requiring basic
/// auth `user:password` when given.
pub fn git_http(root: &Path, auth: Option<(&str, &str)>) -> HttpServer {
    let root = root.to_owned();
    let expected = auth.map(|(u, p)| format!("Basic {}", base64(format!("{u}:{p}").as_bytes())));
    let user = auth
        .map(|(u, _)| u.to_owned())
        .unwrap_or_else(|| "anonymous".into());
    HttpServer::start(move |req| {
        if let Some(exp) = &expected
            && req.headers.get("authorization") != Some(exp)
        {
            return (
                "401 Unauthorized".into(),
                vec![("WWW-Authenticate".into(), "Basic realm=\"git\"".into())],
                b"unauthorized\n".to_vec(),
            );
        }
        git_http_backend(&root, &user, req)
    })
}

/// One request answered by `git http-backend` for the repositories under `root`, as `user`.
pub fn git_http_backend(
    root: &Path,
    user: &str,
    req: &Request,
) -> (String, Vec<(String, String)>, Vec<u8>) {
    let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &req.method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", req.body.len().to_string())
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(ct) = req.headers.get("content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(ce) = req.headers.get("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", ce);
    }
    if let Some(p) = req.headers.get("git-protocol") {
        cmd.env("GIT_PROTOCOL", p);
    }
    let Ok(mut child) = cmd.spawn() else {
        return ("500 Internal Server Error".into(), vec![], vec![]);
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&req.body);
    }
    let Ok(out) = child.wait_with_output() else {
        return ("500 Internal Server Error".into(), vec![], vec![]);
    };
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, 2))
        });
    let Some((i, n)) = split else {
        return ("500 Internal Server Error".into(), vec![], out.stdout);
    };
    let head = String::from_utf8_lossy(&out.stdout[..i]).into_owned();
    let mut status = "200 OK".to_owned();
    let mut headers = Vec::new();
    for l in head.lines() {
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("status") {
                status = v.trim().to_owned();
            } else {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
    (status, headers, out.stdout[i + n..].to_vec())
}

/// Standard base64.
pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                T[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

/// Debian's `docker-registry` (the CNCF distribution registry) on 127.0.0.1, storing under
/// `dir`; with `htpasswd`, basic auth from that file (bcrypt entries).
pub fn docker_registry(dir: &Path, htpasswd: Option<&Path>) -> Result<Server, String> {
    let auth = htpasswd
        .map(|p| {
            format!(
                "auth:\n  htpasswd:\n    realm: promote-test\n    path: {}\n",
                p.display()
            )
        })
        .unwrap_or_default();
    docker_registry_with(dir, &auth)
}

/// Debian's `docker-registry` with an `auth:` section of the caller's (e.g. token auth).
pub fn docker_registry_with(dir: &Path, auth: &str) -> Result<Server, String> {
    let bin = ["/usr/bin/docker-registry", "/usr/local/bin/registry"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .ok_or("docker-registry is not installed: scripts/test installs it (apt-get install docker-registry)")?;
    registry_at(bin, dir, auth)
}

/// distribution v3's registry (`PROMOTE_REGISTRY_V3`, built by `scripts/kube-build --registry`),
/// which pages tag lists by `n` and `last` as Debian's 2.8 does not; `None` when it is not built.
pub fn registry_v3(dir: &Path) -> Option<Result<Server, String>> {
    let bin = std::env::var("PROMOTE_REGISTRY_V3").ok()?;
    Some(registry_at(&bin, dir, ""))
}

fn registry_at(bin: &str, dir: &Path, auth: &str) -> Result<Server, String> {
    std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
    let port = free_port();
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
            dir.join("data").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        // distribution v3 exports traces over OTLP unless told not to.
        .env("OTEL_TRACES_EXPORTER", "none")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{bin}: {e}"))?;
    wait_for_port(port);
    Ok(Server { child, port })
}
