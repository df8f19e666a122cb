{{/* The webhook's image reference: repository, then @digest or :tag (default appVersion). */}}
{{- define "promote.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The lockdown allow-list as a CEL list's items. */}}
{{- define "promote.lockdownList" -}}
{{- $items := list -}}
{{- range .Values.lockdownAllow -}}
{{- $items = append $items (printf "'%s'" .) -}}
{{- end -}}
{{ join ", " $items }}
{{- end -}}

{{/* The lockdown allow-list the webhook binary has built in; the env is set only when it differs. */}}
{{- define "promote.lockdownDefault" -}}
system:serviceaccount:argocd:argocd-application-controller,system:serviceaccount:argocd:argocd-server
{{- end -}}

{{/*
The serving certificate's CA bundle (base64 PEM) and Secret, generated once: an existing
promote-webhook-tls Secret (with ca.crt) is reused, so upgrades keep the certificate.
*/}}
{{- define "promote.tls" -}}
{{- if not (hasKey .Values "_tls") -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace "promote-webhook-tls" -}}
{{- if and $existing (index ($existing.data | default dict) "ca.crt") -}}
{{- $_ := set .Values "_tls" (dict "ca" (index $existing.data "ca.crt") "crt" (index $existing.data "tls.crt") "key" (index $existing.data "tls.key")) -}}
{{- else -}}
{{- $svc := printf "promote-webhook.%s.svc" .Release.Namespace -}}
{{- $ca := genCA "promote-webhook-ca" 3650 -}}
{{- $cert := genSignedCert $svc nil (list $svc (printf "%s.cluster.local" $svc)) 825 $ca -}}
{{- $_ := set .Values "_tls" (dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
