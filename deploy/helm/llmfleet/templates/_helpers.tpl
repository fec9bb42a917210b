{{/* Names */}}
{{- define "llmfleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "llmfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "llmfleet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels: common ones, and the selector of one component (a service, a job, a Triton pool). */}}
{{- define "llmfleet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: llmfleet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "llmfleet.componentLabels" -}}
{{ include "llmfleet.labels" .root }}
app.kubernetes.io/name: {{ .component }}
{{- end -}}

{{- define "llmfleet.selector" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "llmfleet.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Pod annotations: Prometheus scrape hints for a port (when on), then podAnnotations; empty when none. */}}
{{- define "llmfleet.podAnnotations" -}}
{{- $annotations := dict -}}
{{- if .root.Values.prometheus.annotations -}}
{{- $_ := set $annotations "prometheus.io/scrape" "true" -}}
{{- $_ := set $annotations "prometheus.io/port" (toString .port) -}}
{{- $_ := set $annotations "prometheus.io/path" "/metrics" -}}
{{- end -}}
{{- with .extra }}{{ $annotations = merge $annotations . }}{{ end -}}
{{- with $annotations }}{{ toYaml . }}{{ end -}}
{{- end -}}

{{/*
Kafka environment of a client. `prefix` is LLMFLEET_<SERVICE>_ for a service and LLMFLEET_KAFKA_...
for the jobs (shared/kafka_security.py reads LLMFLEET_KAFKA_SECURITY_PROTOCOL etc.).
*/}}
{{- define "llmfleet.kafkaEnv" -}}
{{- $k := .root.Values.kafka -}}
- name: {{ .prefix }}KAFKA_BOOTSTRAP
  value: {{ $k.bootstrap | quote }}
{{- if $k.sasl.enabled }}
- name: {{ .prefix }}KAFKA_SECURITY_PROTOCOL
  value: SASL_SSL
- name: {{ .prefix }}KAFKA_SASL_USERNAME
  value: {{ .username | quote }}
- name: {{ .prefix }}KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $k.sasl.existingSecret }}
      key: {{ .passwordKey }}
- name: {{ .prefix }}KAFKA_SSL_CAFILE
  value: /etc/llmfleet/kafka-ca/{{ $k.tls.caKey }}
{{- end }}
{{- end -}}

{{/* The jobs' Kafka settings: deploy.init reads LLMFLEET_KAFKA_BOOTSTRAP and LLMFLEET_KAFKA_SECURITY_*. */}}
{{- define "llmfleet.jobKafkaEnv" -}}
{{- include "llmfleet.kafkaEnv" (dict "root" .root "prefix" "LLMFLEET_" "username" .root.Values.kafka.sasl.adminUsername "passwordKey" "admin-kafka-password") }}
{{- end -}}

{{/*
A service's database URL: its role's password comes from the Secret into LLMFLEET_<S>_DB_PASSWORD,
and Kubernetes puts it into the URL with $(...) (defined first, so the reference resolves).
*/}}
{{- define "llmfleet.databaseEnv" -}}
{{- $pg := .root.Values.postgres -}}
{{- $up := upper .service -}}
- name: LLMFLEET_{{ $up }}_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $pg.existingSecret }}
      key: {{ .service }}-password
- name: LLMFLEET_{{ $up }}_DATABASE_URL
  value: {{ printf "postgresql+asyncpg://%s:$(LLMFLEET_%s_DB_PASSWORD)@%s:%v/%s%s" .service $up $pg.host $pg.port $pg.database (include "llmfleet.sslQuery" .root) | quote }}
{{- if $pg.tls.enabled }}
- name: PGSSLROOTCERT
  value: /etc/llmfleet/postgres-ca/{{ $pg.tls.caKey }}
{{- end }}
{{- end -}}

{{/* asyncpg takes the TLS mode as `ssl` and the CA from PGSSLROOTCERT (SQLAlchemy passes no sslrootcert). */}}
{{- define "llmfleet.sslQuery" -}}
{{- if .Values.postgres.tls.enabled -}}?ssl={{ .Values.postgres.tls.mode }}{{- end -}}
{{- end -}}

{{/* CA volumes and mounts for Kafka TLS and PostgreSQL TLS, where those are on. */}}
{{- define "llmfleet.caVolumes" -}}
{{- if .Values.kafka.sasl.enabled }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret }}
{{- end }}
{{- if .Values.postgres.tls.enabled }}
- name: postgres-ca
  secret:
    secretName: {{ .Values.postgres.tls.caSecret }}
{{- end }}
{{- end -}}

{{- define "llmfleet.caMounts" -}}
{{- if .Values.kafka.sasl.enabled }}
- name: kafka-ca
  mountPath: /etc/llmfleet/kafka-ca
  readOnly: true
{{- end }}
{{- if .Values.postgres.tls.enabled }}
- name: postgres-ca
  mountPath: /etc/llmfleet/postgres-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "llmfleet.hasCa" -}}
{{- if or .Values.kafka.sasl.enabled .Values.postgres.tls.enabled -}}true{{- end -}}
{{- end -}}

{{/* The allocator's pool: every Triton pod of every pool, by its stable StatefulSet DNS name. */}}
{{- define "llmfleet.tritonPool" -}}
{{- $root := . -}}
{{- $servers := list -}}
{{- range $pool := .Values.triton.pools -}}
{{- $name := printf "%s-triton-%s" (include "llmfleet.fullname" $root) $pool.name -}}
{{- range $i := until (int $pool.replicas) -}}
{{- $host := printf "%s-%d.%s.%s.svc" $name $i $name $root.Release.Namespace -}}
{{- $servers = append $servers (dict "endpoint" (printf "%s:8000" $host) "metrics_url" (printf "http://%s:8002/metrics" $host) "region" $pool.region "gpu_type" $pool.gpuType) -}}
{{- end -}}
{{- end -}}
{{- toJson $servers -}}
{{- end -}}
