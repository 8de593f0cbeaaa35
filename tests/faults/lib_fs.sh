# Helpers for the full-disk tests (sourced): a small tmpfs (root only) and
# the checks every failed write must pass. The caller sets `work` and calls
# fs_cleanup from its EXIT trap.

fs_mounts=()

# small_fs DIR SIZE: mounts a tmpfs of SIZE (e.g. 64k) on DIR; fails (status
# 1, nothing mounted) where mounting is not possible (not root, no tmpfs).
small_fs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2" tmpfs "$1" 2> /dev/null || return 1
  fs_mounts+=("$1")
}

# resize_fs DIR SIZE: a mounted tmpfs gets a new size (in KiB with k).
resize_fs() { mount -o "remount,size=$2" "$1"; }

# fill_fs DIR: fills the file system of DIR up to its last block.
fill_fs() { dd if=/dev/zero of="$1/.filler" bs=4k status=none 2> /dev/null || true; }

fs_cleanup() {
  local m
  for m in "${fs_mounts[@]}"; do umount "$m" 2> /dev/null || umount -l "$m" 2> /dev/null || true; done
}

# can_mount: whether this process may mount a tmpfs (probed once).
can_mount() {
  if [[ -z ${_can_mount:-} ]]; then
    _can_mount=no
    mkdir -p "$work/.probe"
    if mount -t tmpfs -o size=16k tmpfs "$work/.probe" 2> /dev/null; then
      _can_mount=yes
      umount "$work/.probe"
    fi
  fi
  [[ $_can_mount == yes ]]
}

# expect_io_error WHAT RC ERRFILE PATH REASON: a failed write is exit 4 (never a
# crash: 139 is the old segfault at exit) with a message naming PATH and
# strerror's REASON ("No space left on device", "File too large").
expect_io_error() {
  local what=$1 rc=$2 err=$3 path=$4 reason=$5
  if [[ $rc -ne 4 ]]; then
    cat "$err"
    fail "$what: exit $rc, expected 4 (I/O error)"
  fi
  grep -qF "$path" "$err" || { cat "$err"; fail "$what: the message does not name $path"; }
  grep -qF "$reason" "$err" || { cat "$err"; fail "$what: the message does not say '$reason'"; }
  if grep -qiE "segmentation|H5F__close_cb|backtrace" "$err"; then
    cat "$err"
    fail "$what: crashed"
  fi
}

# no_tmp_files DIR...: no temporary file of an atomic write is left.
no_tmp_files() {
  local left
  left=$(find "$@" -name '*.tmp.*' 2> /dev/null)
  [[ -z $left ]] || fail "temporary files left: $left"
}

# fs_probe: sets mounts (a tmpfs can be mounted) and limits (ulimit -f can
# be set) to yes or no; exits 77 (skip) when neither fault can be made.
fs_probe() {
  mounts=no
  can_mount && mounts=yes
  limits=no
  (ulimit -f 64) 2> /dev/null && limits=yes
  if [[ $mounts == no && $limits == no ]]; then
    echo "SKIP: neither a tmpfs mount (needs root) nor a file-size limit (ulimit -f) is possible"
    exit 77
  fi
}
