#!/usr/bin/env bash
# The seed Terraform module's own workflow, timed against moto: init, plan,
# apply of that plan, and a drift check (plan again, -detailed-exitcode).
#
#   run.sh <moto-endpoint> <staging-account> <prefix>
#   run.sh http://127.0.0.1:5055 777777777701 tfbench01
#
# Prints exactly one JSON line on standard output:
#   {"init_ms":..,"plan_ms":..,"apply_ms":..,"drift_plan_ms":..,"drift_exit":0,"repositories":3}
# or, when terraform or the hashicorp/aws provider mirror is absent,
#   {"skipped":"<reason>"}   (exit 0)
# Everything else (terraform's own output, progress) goes to standard error.
# Exit status: 0 with a result or a skip; 1 when a step fails; 2 on bad usage.
#
# Settings (environment): TF_PROVIDER_MIRROR, the mirror root (the folder that
# holds registry.terraform.io/); found with `find / -xdev` when unset.
set -euo pipefail

usage() {
  echo "usage: $0 <moto-endpoint> <staging-account (12 digits)> <prefix>" >&2
  exit 2
}

log() { printf 'terraform-bench: %s\n' "$*" >&2; }

skip() {
  log "skipped: $1"
  local reason="${1//\\/\\\\}"
  reason="${reason//\"/\\\"}"
  printf '{"skipped":"%s"}\n' "$reason"
  exit 0
}

now_ms() { date +%s%3N; }

[[ $# -eq 3 ]] || usage
endpoint="${1%/}"
account="$2"
prefix="$3"
[[ "$endpoint" =~ ^https?://[^[:space:]]+$ ]] || { log "the endpoint must be an http(s) URL: $endpoint"; usage; }
[[ "$account" =~ ^[0-9]{12}$ ]] || { log "the staging account must be 12 digits: $account"; usage; }
[[ "$prefix" =~ ^[a-z0-9]+([._-][a-z0-9]+)*$ ]] || { log "the prefix must be lowercase letters and digits (. _ - between): $prefix"; usage; }

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# --- what we need, or a clear skip -------------------------------------------
command -v terraform >/dev/null 2>&1 || skip "terraform is not on the PATH"

mirror="${TF_PROVIDER_MIRROR:-}"
if [[ -z "$mirror" ]]; then
  provider="$(find / -xdev -path '*/registry.terraform.io/hashicorp/aws/*' -name 'terraform-provider-aws*' \
    -print -quit 2>/dev/null || true)"
  [[ -n "$provider" ]] || skip "no hashicorp/aws provider mirror found (no registry.terraform.io/hashicorp/aws/*/terraform-provider-aws* on this filesystem); set TF_PROVIDER_MIRROR to the mirror root"
  mirror="${provider%/registry.terraform.io/hashicorp/aws/*}"
fi
[[ -d "$mirror/registry.terraform.io/hashicorp/aws" ]] \
  || skip "the provider mirror $mirror has no registry.terraform.io/hashicorp/aws folder"
log "terraform: $(terraform version 2>/dev/null | head -n 1); provider mirror: $mirror"

# moto must answer (the benchmark starts it; a dead endpoint is an error, not a skip).
if command -v curl >/dev/null 2>&1; then
  curl -sS -o /dev/null --max-time 5 "$endpoint/" \
    || { log "nothing answers at $endpoint (is moto running?)"; exit 1; }
fi

# --- a private, hermetic working copy ----------------------------------------
tmp="$(mktemp -d "${TMPDIR:-/tmp}/ecr-portal-tf.XXXXXX")"
cleanup() { rm -rf -- "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -- "$tmp/module"
cp -- "$here"/*.tf "$tmp/module/"

cat >"$tmp/cli.tfrc" <<EOF
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/hashicorp/aws"]
  }
}
EOF

export TF_CLI_CONFIG_FILE="$tmp/cli.tfrc"
export CHECKPOINT_DISABLE=1
export TF_IN_AUTOMATION=1
export AWS_EC2_METADATA_DISABLED=true
export AWS_CONFIG_FILE=/dev/null
export AWS_SHARED_CREDENTIALS_FILE=/dev/null
# Nothing from the caller's environment may change what is planned or where it goes.
unset TF_CLI_ARGS TF_CLI_ARGS_init TF_CLI_ARGS_plan TF_CLI_ARGS_apply \
  TF_DATA_DIR TF_PLUGIN_CACHE_DIR TF_WORKSPACE \
  AWS_PROFILE AWS_DEFAULT_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN \
  AWS_ENDPOINT_URL AWS_ENDPOINT_URL_ECR AWS_ENDPOINT_URL_STS AWS_ENDPOINT_URL_IAM AWS_ROLE_ARN \
  AWS_WEB_IDENTITY_TOKEN_FILE

vars=(
  -var "endpoint=$endpoint"
  -var "staging_account=$account"
  -var "prefix=$prefix"
)

cd -- "$tmp/module"

# --- the workflow, timed ------------------------------------------------------
log "terraform init"
t0="$(now_ms)"
terraform init -input=false -no-color >&2
init_ms=$(( $(now_ms) - t0 ))

log "terraform plan -out (prefix $prefix, account $account, endpoint $endpoint)"
t0="$(now_ms)"
terraform plan -input=false -no-color -out=tfplan "${vars[@]}" >&2
plan_ms=$(( $(now_ms) - t0 ))

log "terraform apply tfplan"
t0="$(now_ms)"
terraform apply -input=false -no-color tfplan >&2
apply_ms=$(( $(now_ms) - t0 ))

log "terraform plan -detailed-exitcode (the drift check)"
t0="$(now_ms)"
set +e
terraform plan -input=false -no-color -detailed-exitcode "${vars[@]}" >&2
drift_exit=$?
set -e
drift_plan_ms=$(( $(now_ms) - t0 ))
case "$drift_exit" in
  0) ;;
  2) log "the drift check found changes right after apply (exit 2): the module is not idempotent here" ;;
  *) log "the drift check failed (exit $drift_exit)"; exit 1 ;;
esac

repositories="$(terraform output -no-color -raw repository_count)"
[[ "$repositories" =~ ^[0-9]+$ ]] || { log "unexpected repository_count output: $repositories"; exit 1; }

log "init ${init_ms} ms, plan ${plan_ms} ms, apply ${apply_ms} ms, drift plan ${drift_plan_ms} ms (exit $drift_exit), $repositories repositories"
printf '{"init_ms":%d,"plan_ms":%d,"apply_ms":%d,"drift_plan_ms":%d,"drift_exit":%d,"repositories":%d}\n' \
  "$init_ms" "$plan_ms" "$apply_ms" "$drift_plan_ms" "$drift_exit" "$repositories"
