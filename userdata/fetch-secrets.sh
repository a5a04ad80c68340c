#!/usr/bin/env bash
# The API key (and HF token) into a root-only env file, the TLS key into a file of root and the service's group,
# at the versions pixtral.env names: a rotated key is a new version, new user data, a new VM.
set -euo pipefail
# shellcheck source=userdata/pixtral-lib.sh
. "${PIXTRAL_LIB:-/usr/local/lib/pixtral}/pixtral-lib.sh"

# read_secret NAME VERSION
read_secret() {
  case "$PIXTRAL_SECRET_STORE" in
    aws-ssm)
      aws ssm get-parameter --region "$PIXTRAL_AWS_REGION" --name "$1:$2" --with-decryption \
        --query Parameter.Value --output text ;;
    gcp-secret-manager)
      gcloud secrets versions access "$2" --secret "$1" --project "$PIXTRAL_GCP_PROJECT" ;;
    *)
      echo "unknown PIXTRAL_SECRET_STORE '$PIXTRAL_SECRET_STORE'" >&2
      return 1 ;;
  esac
}

# fetch NAME VERSION: read_secret, retried; a refusal names the secret.
fetch() {
  retry read_secret "$1" "$2" || { echo "cannot read secret $1 (version $2) from $PIXTRAL_SECRET_STORE" >&2; return 1; }
}

# env_line NAME VALUE: a systemd env-file line giving VALUE back unchanged (in double quotes systemd unescapes
# " \ ` $; cloudinit.py writes pixtral.env alike). No control character: a newline would start a variable of the
# sender's choosing. The value reaches sed on stdin, never on a command line.
env_line() {
  case $2 in
    *[[:cntrl:]]*)
      echo "the secret for $1 contains a control character; refusing to write it" >&2
      return 1 ;;
  esac
  printf '%s="%s"\n' "$1" "$(printf '%s' "$2" | sed 's/[\\"$`]/\\&/g')"
}

secrets_file=${PIXTRAL_SECRETS_FILE:-/etc/pixtral/secrets.env}
umask 077
tmp=$(mktemp "$secrets_file.XXXXXX")
api_key=$(fetch "$PIXTRAL_API_KEY_SECRET" "$PIXTRAL_API_KEY_VERSION")
env_line VLLM_API_KEY "$api_key" >"$tmp"
if [ -n "${PIXTRAL_HF_TOKEN_SECRET:-}" ]; then
  hf_token=$(fetch "$PIXTRAL_HF_TOKEN_SECRET" "$PIXTRAL_HF_TOKEN_VERSION")
  env_line HF_TOKEN "$hf_token" >>"$tmp"
fi
mv "$tmp" "$secrets_file"
# A metrics agent scraping /metrics for an autoscaler sends the key as its Bearer token, read from this file.
if [ -n "${PIXTRAL_METRICS_TOKEN_FILE:-}" ]; then
  token_tmp=$(mktemp "$PIXTRAL_METRICS_TOKEN_FILE.XXXXXX")
  printf '%s' "$api_key" >"$token_tmp"
  mv "$token_tmp" "$PIXTRAL_METRICS_TOKEN_FILE"
fi
if [ -n "${PIXTRAL_TLS_KEY_SECRET:-}" ]; then
  key_file=${PIXTRAL_TLS_KEY_FILE:-/etc/pixtral/tls/tls.key}
  key_tmp=$(mktemp "$key_file.XXXXXX")
  fetch "$PIXTRAL_TLS_KEY_SECRET" "$PIXTRAL_TLS_KEY_VERSION" >"$key_tmp"
  # vLLM runs as the service user and opens the key itself: group-readable, by that group only.
  chgrp "${PIXTRAL_USER:-vllm}" "$key_tmp"
  chmod 0640 "$key_tmp"
  mv "$key_tmp" "$key_file"
fi
phase secrets end
