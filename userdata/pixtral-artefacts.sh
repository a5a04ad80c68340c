# Sourced by the install, download and publish scripts: the stack's artefact store ($PIXTRAL_ARTEFACTS, s3://BUCKET
# or gs://BUCKET, or a user's s3://BUCKET/PREFIX or gs://BUCKET/PREFIX with the same layout under PREFIX; empty: none). The first boot that installs vLLM and downloads the model itself publishes them
# there once; every later boot of the stack takes them from it instead of PyPI and Hugging Face.
# Layout and rights: docs/vms.md "Warm starts". Each artefact is one tar (weights do not compress, and the
# network outruns gzip) beside a manifest of its checksum, written last: a manifest means the data is complete. A VM's
# weights are plain objects instead (publish_weights), which vLLM streams from the store into GPU memory.
# shellcheck shell=bash

# s3 ARGS...: the AWS CLI with more parallel requests than its default (10 of 8 MiB, a fraction of a GPU instance's
# network); 32 of 16 MiB keep half a GiB in flight.
s3() {
  local config=${PIXTRAL_RUN_DIR:-/run}/pixtral-aws-s3.config
  [ -e "$config" ] ||
    printf '[default]\ns3 =\n  max_concurrent_requests = 32\n  multipart_chunksize = 16MB\n' >"$config"
  AWS_CONFIG_FILE=$config aws --region "$PIXTRAL_AWS_REGION" "$@"
}

# store_read KEY: the object on stdout; fails when it is absent.
store_read() {
  case $PIXTRAL_ARTEFACTS in
    s3://*) s3 s3 cp --only-show-errors "$PIXTRAL_ARTEFACTS/$1" - ;;
    gs://*) gcloud storage cat "$PIXTRAL_ARTEFACTS/$1" ;;
    *) echo "unknown artefact store '$PIXTRAL_ARTEFACTS'" >&2; return 1 ;;
  esac
}

# store_stream KEY DIR: a large object on stdout, read with parallel ranged requests: the AWS CLI does so into a
# pipe (writing the ranges in order); gcloud only into a file, so on GCS it goes through one in DIR, then is removed.
store_stream() {
  case $PIXTRAL_ARTEFACTS in
    gs://*)
      local file
      file=$(mktemp -p "$2" .download.XXXXXX) || return 1
      gcloud storage cp --quiet "$PIXTRAL_ARTEFACTS/$1" "$file" && cat "$file"
      local read=$?
      rm -f "$file"
      return $read ;;
    *) store_read "$1" ;;
  esac
}

# store_list PREFIX: "BYTES KEY" for each object under PREFIX (keys from the store's root), from one listing: the
# identity's ListBucket (S3) or storage.objects.list (GCS) on the store, as vLLM's streamer needs too.
store_list() {
  case $PIXTRAL_ARTEFACTS in
    s3://*) s3 s3api list-objects-v2 --bucket "${PIXTRAL_ARTEFACTS#s3://}" --prefix "$1" --output text \
              --query 'Contents[].[Size,Key]' | awk -F '\t' 'NF == 2 { print $1, $2 }' ;;
    gs://*) gcloud storage ls --long "$PIXTRAL_ARTEFACTS/$1**" |
              awk -v store="$PIXTRAL_ARTEFACTS/" 'index($3, store) == 1 { print $1, substr($3, length(store) + 1) }' ;;
    *) echo "unknown artefact store '$PIXTRAL_ARTEFACTS'" >&2; return 1 ;;
  esac
}

# store_write KEY: stdin into the object (a multipart upload).
store_write() {
  case $PIXTRAL_ARTEFACTS in
    s3://*) s3 s3 cp --only-show-errors - "$PIXTRAL_ARTEFACTS/$1" ;;
    # Not as a parallel composite upload: it deletes its parts after composing them, which objectCreator may not.
    gs://*) CLOUDSDK_STORAGE_PARALLEL_COMPOSITE_UPLOAD_ENABLED=False \
              gcloud storage cp --quiet - "$PIXTRAL_ARTEFACTS/$1" ;;
    *) echo "unknown artefact store '$PIXTRAL_ARTEFACTS'" >&2; return 1 ;;
  esac
}

# store_claim KEY: creates KEY only if it does not exist (S3's If-None-Match, GCS's generation 0), so of the
# replicas that boot together exactly one publishes. The store expires claims after a day: a publisher that died
# does not block the next one for ever.
store_claim() {
  local note
  note=$(mktemp)
  printf '%s claimed at %s\n' "$(hostname)" "$(date -u +%FT%TZ)" >"$note"
  local location=${PIXTRAL_ARTEFACTS#s3://}
  case $PIXTRAL_ARTEFACTS in
    # s3api takes the bucket and the whole key apart: a PREFIX goes before the key.
    s3://*/*) s3 s3api put-object --bucket "${location%%/*}" --key "${location#*/}/$1" --if-none-match '*' \
                --body "$note" >/dev/null ;;
    s3://*) s3 s3api put-object --bucket "$location" --key "$1" --if-none-match '*' --body "$note" >/dev/null ;;
    gs://*) gcloud storage cp --quiet --if-generation-match=0 "$note" "$PIXTRAL_ARTEFACTS/$1" ;;
  esac
  local claimed=$?
  rm -f "$note"
  return $claimed
}

# counted FILE: stdin to stdout unchanged, then "SHA256 BYTES" of what passed into FILE (checked against the
# manifest after the stream, as the data arrives once).
counted() {
  python3 -c '
import hashlib, sys
digest, size = hashlib.sha256(), 0
while chunk := sys.stdin.buffer.read(1 << 20):
    digest.update(chunk)
    size += len(chunk)
    sys.stdout.buffer.write(chunk)
sys.stdout.flush()
open(sys.argv[1], "w").write(f"{digest.hexdigest()} {size}\n")' "$1"
}

# The artefacts' keys: a venv serves one vLLM and Python version, a compile cache one vLLM version on one GPU model
# and count, the weights one model.
# The venv's key names the extra it was installed with: a venv.tar published before the streamer was part of the
# install would not start a streamed boot.
venv_prefix() { echo "vllm/$PIXTRAL_VLLM_VERSION-$PIXTRAL_VLLM_EXTRA/py$PIXTRAL_PYTHON_VERSION"; }
model_prefix() { echo "model/${PIXTRAL_MODEL//\//--}"; }
# A VM's weights as plain objects (pixtral_deploy/artefacts.py WEIGHTS_DIR).
weights_prefix() { echo "$(model_prefix)/weights"; }
model_marker() { echo ".pixtral-downloaded-${PIXTRAL_MODEL//\//--}"; }
# The model's folder in the Hugging Face cache, under $HF_HOME, as `hf download` lays it out; its snapshot, the folder
# of the files themselves, is the one refs/main names.
hub_model() { echo "hub/models--${PIXTRAL_MODEL//\//--}"; }
hub_snapshot() { echo "$HF_HOME/$(hub_model)/snapshots/$(cat "$HF_HOME/$(hub_model)/refs/main")"; }
# compile_prefix WAY: vLLM hashes its configuration into its compile cache's key (VllmConfig.compute_hash at 0.32.0,
# which the default AOT compile's cache folder follows whatever compilation_config.cache_dir says): the model argument
# and every setting that shapes the graph (--max-model-len, --dtype, --quantization, ...). A cache published under a
# key that names less is never used by a boot whose arguments differ, and the key, taken, is never published again:
# after a change of serving arguments every later boot would compile. So the key names the vLLM version, the GPU model
# and count, the way the weights are read (`stream` from the store, `hub` from the disk: different model arguments)
# and a digest of that way's argument file, exactly what vLLM is started with.
compile_prefix() {
  local gpus name digest
  gpus=$(nvidia-smi -L) || return 1
  name=$(sed -n '1s/^GPU [0-9]*: \(.*\) (UUID.*/\1/p' <<<"$gpus" | tr '[:upper:]' '[:lower:]' | tr -cs 'a-z0-9' '-')
  digest=$(sha256sum <"$(vllm_args_file "$1")") || return 1
  echo "compile/$PIXTRAL_VLLM_VERSION/${name%-}-x$(grep -c '^GPU ' <<<"$gpus")/$1/${digest:0:16}"
}

# fetch_artefact PREFIX FILE DIR: the artefact unpacked into DIR, its entries moved into place only once its checksum
# and size match the manifest. Fails with one line saying why (none yet, unreadable, corrupt); DIR then has nothing
# of it and the caller takes the artefact from its origin.
fetch_artefact() {
  local prefix=$1 file=$2 dir=$3 manifest want got unpack entry errors
  [ -n "${PIXTRAL_ARTEFACTS:-}" ] || return 1
  errors=$(mktemp)
  if ! manifest=$(store_read "$prefix/manifest.json" 2>"$errors"); then
    echo "artefact $PIXTRAL_ARTEFACTS/$prefix: not published yet ($(tail -n 1 "$errors"))"
    rm -f "$errors"
    return 1
  fi
  rm -f "$errors"
  want=$(python3 -c 'import json, sys
f = json.loads(sys.argv[1])["files"][sys.argv[2]]
print(f["sha256"], f["bytes"])' "$manifest" "$file") ||
    { echo "artefact $PIXTRAL_ARTEFACTS/$prefix: unreadable manifest"; return 1; }
  mkdir -p "$dir"
  unpack=$(mktemp -d "$dir/.artefact.XXXXXX")
  if store_stream "$prefix/$file" "$dir" | counted "$unpack.sum" | tar -x -C "$unpack" && got=$(cat "$unpack.sum") &&
    [ "$got" = "$want" ]; then
    for entry in "$unpack"/* "$unpack"/.[!.]*; do
      [ -e "$entry" ] || continue
      rm -rf "${dir:?}/${entry##*/}"
      mv "$entry" "$dir/"
    done
    rm -rf "$unpack" "$unpack.sum"
    return 0
  fi
  echo "artefact $PIXTRAL_ARTEFACTS/$prefix/$file: does not match its manifest (sha256 and bytes: got ${got:-none}," \
    "want $want)"
  rm -rf "$unpack" "$unpack.sum"
  return 1
}

# publishes_here PREFIX: whether this boot publishes the artefact under PREFIX (0). Not when the store has its
# manifest already, nor when another boot claimed it first (2: skipped), nor when the claim cannot be written (1:
# failed); each said in one line.
publishes_here() {
  local errors
  if store_read "$1/manifest.json" >/dev/null 2>&1; then
    echo "artefact $1: already in the store"
    return 2
  fi
  errors=$(mktemp)
  if store_claim "claims/$1" 2>"$errors"; then
    rm -f "$errors"
    return 0
  fi
  local said
  said=$(cat "$errors")
  rm -f "$errors"
  # A claim that exists is refused with 412, which both CLIs report with its name (S3's PreconditionFailed; GCS's "At
  # least one of the pre-conditions you specified did not hold"); anything else (the store unreachable, no right to
  # write) is a failure, not another publisher. Bash's own matching: a pod's image may have no grep.
  case ${said,,} in
    *precondition* | *pre-condition*)
      echo "artefact $1: another boot is publishing it"
      return 2 ;;
  esac
  echo "artefact $1: cannot claim it (${said##*$'\n'})"
  return 1
}

# publish_artefact PREFIX FILE DIR ENTRY...: DIR's ENTRYs as one tar under PREFIX, unless the store has them or
# another boot claimed them first (both a success); the manifest goes last.
publish_artefact() {
  local prefix=$1 file=$2 dir=$3 sums sha bytes here=0
  shift 3
  publishes_here "$prefix" || here=$?
  [ "$here" -ne 2 ] || return 0
  [ "$here" -eq 0 ] || return 1
  sums=$(mktemp)
  tar -C "$dir" -cf - "$@" | counted "$sums" | store_write "$prefix/$file" || { rm -f "$sums"; return 1; }
  read -r sha bytes <"$sums"
  rm -f "$sums"
  python3 -c '
import json, sys, time
prefix, file, sha, size, vllm, python, model = sys.argv[1:]
print(json.dumps({"artefact": prefix, "vllm": vllm, "python": python, "model": model,
                  "files": {file: {"sha256": sha, "bytes": int(size)}}, "published": round(time.time())}))' \
    "$prefix" "$file" "$sha" "$bytes" "$PIXTRAL_VLLM_VERSION" "$PIXTRAL_PYTHON_VERSION" "$PIXTRAL_MODEL" |
    store_write "$prefix/manifest.json"
  echo "artefact $prefix: published ($bytes bytes)"
}

# from_store PHASE ORIGIN PREFIX FILE DIR MARKER: starts PHASE in the timeline with where its piece came from. The
# artefact under PREFIX unpacked into DIR and MARKER there: source "artefacts", success; else source ORIGIN, and a
# failure that tells the caller to take the piece from its origin. The start is recorded once the source is known,
# at the time the phase began.
from_store() {
  local started
  started=$(date +%s.%N)
  if fetch_artefact "$3" "$4" "$5" && [ -e "$6" ]; then
    phase "$1" start "$started" artefacts
    return 0
  fi
  phase "$1" start "$started" "$2"
  return 1
}

# weights_in_store: whether vLLM can stream the model from the store: its weights' manifest is there and every file
# it lists is an object of the size it says, from one listing. Sizes, not the sha256: hashing would read the 25 GB the
# stream is there to read once; the manifest is written after the last object, and a missing or truncated object
# (a publisher stopped half-way, a lifecycle rule) shows in its size. Else one line saying why, and a failure.
weights_in_store() {
  local prefix errors manifest listing
  if [ -z "${PIXTRAL_ARTEFACTS:-}" ]; then
    echo "weights: no artefact store (pixtral:warmStarts is off)"
    return 1
  fi
  prefix=$(weights_prefix)
  errors=$(mktemp)
  if ! manifest=$(store_read "$prefix/manifest.json" 2>"$errors"); then
    echo "weights $PIXTRAL_ARTEFACTS/$prefix: not published yet ($(tail -n 1 "$errors"))"
    rm -f "$errors"
    return 1
  fi
  if ! listing=$(store_list "$prefix/" 2>"$errors"); then
    echo "weights $PIXTRAL_ARTEFACTS/$prefix: cannot list the objects ($(tail -n 1 "$errors"))"
    rm -f "$errors"
    return 1
  fi
  rm -f "$errors"
  python3 -c '
import json, sys
manifest, listing, prefix, url = sys.argv[1:]
try:
    files = json.loads(manifest)["files"]
    want = {name: int(entry["bytes"]) for name, entry in files.items()}
except (ValueError, KeyError, TypeError, AttributeError):
    sys.exit(f"weights {url}: unreadable manifest")
if not want:
    sys.exit(f"weights {url}: the manifest lists no file")
have = {}
for line in listing.splitlines():
    size, _, key = line.partition(" ")
    if key.startswith(prefix + "/") and size.isdigit():
        have[key[len(prefix) + 1:]] = int(size)
for name, size in sorted(want.items()):
    if name not in have:
        sys.exit(f"weights {url}: {name} is in the manifest but not in the store")
    if have[name] != size:
        sys.exit(f"weights {url}: {name} has {have[name]} bytes, the manifest says {size}")' \
    "$manifest" "$listing" "$prefix" "$PIXTRAL_ARTEFACTS/$prefix" 2>&1
}

# publish_weights SNAPSHOT: every file of the model's Hugging Face snapshot (its links followed) as one object under
# weights_prefix; the manifest, each file's sha256 and bytes, goes last, so a manifest means every object is complete.
# Returns 0 once published, 2 when skipped (the store has them, or another boot claimed them first), 1 when it failed;
# the last line it prints says which and why.
publish_weights() {
  local snapshot=$1 prefix work rel here=0
  prefix=$(weights_prefix)
  publishes_here "$prefix" || here=$?
  [ "$here" -eq 0 ] || return "$here"
  work=$(mktemp -d) || { echo "artefact $prefix: no scratch folder"; return 1; }
  if ! (cd "$snapshot" && find -L . -type f -printf '%P\n' | sort) >"$work/files" || [ ! -s "$work/files" ]; then
    echo "artefact $prefix: no files in $snapshot"
    rm -rf "$work"
    return 1
  fi
  while IFS= read -r rel; do
    if ! counted "$work/sum" <"$snapshot/$rel" | store_write "$prefix/$rel" 2>"$work/errors"; then
      echo "artefact $prefix: the upload of $rel failed ($(tail -n 1 "$work/errors"))"
      rm -rf "$work"
      return 1
    fi
    printf '%s %s\n' "$(cat "$work/sum")" "$rel" >>"$work/sums"
  done <"$work/files"
  if ! python3 -c '
import json, sys, time
prefix, model, sums = sys.argv[1:]
files = {}
for line in open(sums):
    sha, size, name = line.rstrip("\n").split(" ", 2)
    files[name] = {"sha256": sha, "bytes": int(size)}
print(json.dumps({"artefact": prefix, "model": model, "files": files, "published": round(time.time())}))' \
    "$prefix" "$PIXTRAL_MODEL" "$work/sums" | store_write "$prefix/manifest.json" 2>"$work/errors"; then
    echo "artefact $prefix: the upload of manifest.json failed ($(tail -n 1 "$work/errors"))"
    rm -rf "$work"
    return 1
  fi
  echo "artefact $prefix: published ($(wc -l <"$work/files") files)"
  rm -rf "$work"
}
