#!/usr/bin/env bash
# Builds docker/Dockerfile without a Docker daemon (buildah) and checks the image from inside.
#
#   sudo bash docker/check.sh          from a clone; KEEP=1 keeps the images it built
#
# 1. The base: docker/Dockerfile's default BASE_IMAGE if it is in local storage already; otherwise
#    a stand-in made here from Debian packages (debootstrap): Python 3.11 and pip in a venv at
#    /opt/conda (where the PyTorch image has its Python), with the base's torch and torchvision
#    from the package index. Registries of base images need not be reachable.
# 2. docker/Dockerfile itself, built on that base; only BASE_IMAGE is passed, nothing is edited.
# 3. Checks inside the image, as its own user (uid 1000); the last line is
#    "image check: N passed, N failed", and the exit code is non-zero if anything failed.
# Needs root (buildah's chroot isolation), 25 GB of disk and a few GB of downloads.
set -uo pipefail
cd "$(dirname "$0")/.."

started=$(date +%s)
KEEP=${KEEP:-0}
# The stand-in's versions: those of the default base's tag (pytorch/pytorch:2.5.1-cuda12.4-...).
STANDIN_TORCH=2.5.1
STANDIN_TORCHVISION=0.20.1
STANDIN=localhost/dali-ba-standin-base:torch$STANDIN_TORCH
IMAGE=localhost/dali-ba:check
WORK=${WORK:-/var/tmp/dali-ba-check}
BUILDAH=(buildah --storage-driver vfs)  # vfs: no overlay or fuse needed, works in any container

passed=0 failed=0 base=none base_s=0 build_s=0 checks_s=0
say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'docker/check.sh: %s\n' "$*" >&2; exit 2; }  # before anything is built
finish() {  # the summary, the clean-up and the closing line; exits 0 only if nothing failed
  local size
  size=$("${BUILDAH[@]}" images --format '{{.Size}}' "$IMAGE" 2>/dev/null | head -n 1)
  echo
  echo "base: $base ($base_s s)   image: $IMAGE, ${size:-not built}   build: $build_s s   checks: $checks_s s   total: $(( $(date +%s) - started )) s"
  if [ "$KEEP" != 1 ]; then
    [ -n "${ctr:-}" ] && "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1
    "${BUILDAH[@]}" rmi "$IMAGE" >/dev/null 2>&1
    [ "$base" = "$STANDIN" ] && "${BUILDAH[@]}" rmi "$STANDIN" >/dev/null 2>&1
    rm -rf "$WORK"
  fi
  echo "image check: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
broken() { failed=$((failed + 1)); echo "FAIL  $*"; finish; }  # a step the checks need failed

[ "$(id -u)" -eq 0 ] || die "needs root (buildah --isolation chroot); run it with sudo"
need=()
command -v buildah >/dev/null || need+=(buildah)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null \
    || die "could not install ${need[*]} with apt-get"
fi

default_base=$(sed -n 's/^ARG BASE_IMAGE=//p' docker/Dockerfile)
[ -n "$default_base" ] || die "docker/Dockerfile has no 'ARG BASE_IMAGE=' line"
case "$default_base" in
  *":$STANDIN_TORCH-"*) ;;
  *) die "the default base $default_base is not torch $STANDIN_TORCH: update STANDIN_TORCH/STANDIN_TORCHVISION here" ;;
esac

# Trust what the host trusts: behind a TLS-inspecting proxy (the machine this was written on has
# one) pip inside the build needs the host's CA bundle. It is mounted, for the RUN steps only,
# over files the base already has (the system bundle, and the certifi bundle pip ships), so that
# nothing of it, not even an empty mount point, is committed into the image.
HOST_CA=${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}
trust() {  # trust CONTAINER: prints the --volume options for pip in CONTAINER, one per line
  [ -f "$HOST_CA" ] || return 0
  local certifi
  certifi=$("${BUILDAH[@]}" run --isolation chroot "$1" -- python -c \
      'import pip._vendor.certifi as c; print(c.where())' 2>/dev/null) || certifi=
  echo "--volume=$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro"
  # (Debian's pip already reads the system bundle: one mount then.)
  [ -n "$certifi" ] && [ "$certifi" != /etc/ssl/certs/ca-certificates.crt ] && echo "--volume=$HOST_CA:$certifi:ro"
  return 0
}

# -- 1. the base --------------------------------------------------------------------------------
base_started=$(date +%s)
if "${BUILDAH[@]}" inspect --type image "$default_base" >/dev/null 2>&1; then
  base=$default_base
  say "base: $base, found in local storage"
elif "${BUILDAH[@]}" inspect --type image "$STANDIN" >/dev/null 2>&1; then
  base=$STANDIN
  say "base: $STANDIN, the stand-in built by an earlier run"
else
  base=$STANDIN
  say "base: building $STANDIN from Debian packages (the registry's $default_base is not pulled)"
  rm -rf "$WORK/rootfs" && mkdir -p "$WORK"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$WORK/rootfs" \
      http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
    || { tail -n 20 "$WORK/debootstrap.log"; broken "debootstrap"; }
  tar -C "$WORK/rootfs" -cf "$WORK/rootfs.tar" . && rm -rf "$WORK/rootfs"
  ctr=$("${BUILDAH[@]}" from scratch) || broken "buildah from scratch"
  "${BUILDAH[@]}" add "$ctr" "$WORK/rootfs.tar" / >/dev/null && rm -f "$WORK/rootfs.tar"
  "${BUILDAH[@]}" config --env PATH=/opt/conda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env LANG=C.UTF-8 --workingdir /workspace "$ctr"
  "${BUILDAH[@]}" run --isolation chroot "$ctr" -- sh -c "python3 -m venv /opt/conda && apt-get clean && rm -rf /var/lib/apt/lists/*" \
    || broken "making the stand-in's Python environment"
  mapfile -t mounts < <(trust "$ctr")
  "${BUILDAH[@]}" run --isolation chroot "${mounts[@]}" "$ctr" -- sh -c \
      "PIP_NO_CACHE_DIR=1 pip install -q --progress-bar off torch==$STANDIN_TORCH torchvision==$STANDIN_TORCHVISION" \
    || broken "installing torch $STANDIN_TORCH into the stand-in base"
  "${BUILDAH[@]}" commit --quiet "$ctr" "$STANDIN" >/dev/null || broken "committing the stand-in base"
  "${BUILDAH[@]}" rm "$ctr" >/dev/null && ctr=
fi
base_s=$(( $(date +%s) - base_started ))

# -- 2. the image, from docker/Dockerfile as it is ----------------------------------------------
say "building docker/Dockerfile on $base"
build_started=$(date +%s)
probe=$("${BUILDAH[@]}" from --pull=never "$base") || broken "buildah from $base"
mapfile -t mounts < <(trust "$probe")
"${BUILDAH[@]}" rm "$probe" >/dev/null
"${BUILDAH[@]}" build --isolation chroot --pull=never "${mounts[@]}" --build-arg "BASE_IMAGE=$base" -f docker/Dockerfile -t "$IMAGE" .
build_rc=$?
build_s=$(( $(date +%s) - build_started ))
[ "$build_rc" -eq 0 ] || broken "docker/Dockerfile did not build on $base"
passed=$((passed + 1)); echo "PASS  docker/Dockerfile builds on $base"

# -- 3. checks inside the image, as uid 1000 -----------------------------------------------------
checks_started=$(date +%s)
ctr=$("${BUILDAH[@]}" from "$IMAGE") || broken "buildah from $IMAGE"
inside() { "${BUILDAH[@]}" run --isolation chroot --user 1000:1000 "$ctr" -- "$@"; }
check() {  # check NAME COMMAND...: runs COMMAND inside the image as uid 1000
  local name=$1; shift
  local t0 out
  t0=$(date +%s)
  if out=$(inside "$@" 2>&1); then
    passed=$((passed + 1)); printf 'PASS  %-48s %4ss\n' "$name" $(( $(date +%s) - t0 ))
  else
    failed=$((failed + 1)); printf 'FAIL  %-48s %4ss\n%s\n' "$name" $(( $(date +%s) - t0 )) "$(printf '%s\n' "$out" | tail -n 15)"
  fi
}

entrypoint=$("${BUILDAH[@]}" inspect --format '{{.OCIv1.Config.Entrypoint}} {{.OCIv1.Config.User}}' "$IMAGE")
if [ "$entrypoint" = "[dali-ba] 1000:1000" ]; then
  passed=$((passed + 1)); echo "PASS  entry point dali-ba, user 1000:1000"
else
  failed=$((failed + 1)); echo "FAIL  entry point and user: $entrypoint"
fi
check "dali-ba --help" dali-ba --help
check "import dali_ba (no GPU)" python -c "import dali_ba, nvidia.dali, torch; print(dali_ba.__version__, nvidia.dali.__version__, torch.__version__)"
check "cache directory writable" sh -c 'mkdir -p "$DALI_BA_CACHE" && touch "$DALI_BA_CACHE/.probe" && rm "$DALI_BA_CACHE/.probe"'
check "dali-ba make-dataset (train, val)" sh -c 'dali-ba make-dataset /tmp/data/train --images 48 --classes 4 >/dev/null &&
                                              dali-ba make-dataset /tmp/data/val --images 16 --classes 4 --seed 1 >/dev/null'
check "dali-ba bench --device cpu, M=1,2" dali-ba bench /tmp/data/train --device cpu -M 1,2 -b 8 --steps 3 --warmup 1 \
                                              --loaders dali-ba,dali-large,torch-once --image-size 64
check "train_imagenet.py: 2 steps, checkpoint" python /opt/dali-ba/examples/train_imagenet.py /tmp/data --arch resnet18 -b 4 -M 2 \
    --train-crop-size 64 --val-crop-size 64 --val-resize-size 72 --device cpu -j 2 --max-steps 2 --output-dir /tmp/out
check "train_imagenet.py: resumed to the epoch's end" sh -c 'python /opt/dali-ba/examples/train_imagenet.py /tmp/data --arch resnet18 \
    -b 4 -M 2 --train-crop-size 64 --val-crop-size 64 --val-resize-size 72 --device cpu -j 2 --epochs 1 --output-dir /tmp/out \
    --resume /tmp/out/checkpoint.pth | tee /dev/stderr | grep -q "resumed from /tmp/out/checkpoint.pth: epoch 0, batch 2 of 12"'
check "no compiler in the image" sh -c '! command -v gcc && ! command -v cc && ! command -v g++'
check "no pip cache in the image" sh -c '! ls -d /root/.cache/pip /home/dali/.cache/pip 2>/dev/null | grep -q .'
check "nothing left by the build's mounts" sh -c '[ ! -e /etc/pip.conf ]'
"${BUILDAH[@]}" rm "$ctr" >/dev/null && ctr=
checks_s=$(( $(date +%s) - checks_started ))
finish
