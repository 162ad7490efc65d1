# Sourced by the scripts of tools/device/ that work with a GPU lent through the `device` tool:
# train-prepare.sh and train.sh, gpu-check.sh. Each makes a folder here (ignored by git), and a
# call carries it there. The lent machine has the NVIDIA driver and its Vulkan ICD, but no network,
# no Rust, no Node.js, no data set, and neither the Vulkan loader nor the GL dispatch libraries
# that NVIDIA's ICD links against (without them the loader finds no adapter): so the folder brings
# them. A call carries at most 64 MiB: the tree (tracked files, and untracked ones git does not
# ignore) and the folders it names.
# Sourcing it moves to the repository's root (where the device tool runs a command) and sets DATA
# and CACHE; it leaves the shell's options (set -e or not) to the script.
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
CACHE=${CACHE:-$HOME/.cache/ddpm-web}
# Debian's Vulkan loader and the GL dispatch libraries.
GL_DEBS=(libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
NVIDIA_ICD=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
CARRY_LIMIT=$((64 * 1024 * 1024))

# ---- Here, preparing FOLDER ----

# Downloads GL_DEBS into FOLDER/gl (empty or absent before), or stops if any is missing.
download_gl() {
  mkdir -p "$1/gl"
  (cd "$1/gl" && apt-get download "${GL_DEBS[@]}" > /dev/null)
  [ "$(ls "$1"/gl/*.deb 2>/dev/null | wc -l)" = ${#GL_DEBS[@]} ] ||
    { echo "apt-get download got $(ls "$1/gl") of ${GL_DEBS[*]}" >&2; exit 1; }
}

# Copies Fashion-MNIST's IDX files (FILE.gz, from DATA) into FOLDER: the images as xz (4 MB less
# than gzip), the labels as they are.
pack_data() {
  local to=$1 f
  shift
  mkdir -p "$to"
  for f in "$@"; do
    case $f in
      *images*) zcat "$f" | xz -T0 -9 > "$to/$(basename "$f" .gz).xz" ;;
      *) cp "$f" "$to/" ;;
    esac
  done
}

# Ends the preparation of FOLDER: records the commit it was built from, keeps FOLDER out of git,
# and stops if the tree and FOLDER together are more than a call carries.
ready() {
  local here=$1 exclude tree size
  git rev-parse HEAD > "$here/commit"
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")"
  grep -qx "/$here/" "$exclude" 2>/dev/null || echo "/$here/" >> "$exclude"
  tree=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
  size=$(du -sb "$here" | cut -f1)
  echo "$here/ is ready, built from $(cut -c1-7 "$here/commit"): $((size / 1000000)) MB + the tree's $((tree / 1000000)) MB = $(((tree + size) / 1000000)) MB of the $((CARRY_LIMIT / 1000000)) MB a call carries"
  [ $((tree + size)) -le $CARRY_LIMIT ] || { echo "over the limit: a call would be refused" >&2; exit 1; }
}

# ---- There, on the lent machine ----

# Stops unless FILE was carried; PREPARE says what makes it.
carried() {
  [ -f "$1" ] || { echo "no $1: run $2 here and carry ${1%%/*}" >&2; exit 2; }
}

# xz -d to stdout, or Python's lzma where the image has no xz.
unxz() { xz -dc "$1" 2>/dev/null || python3 -c "import lzma,sys; sys.stdout.buffer.write(lzma.open(sys.argv[1]).read())" "$1"; }

# Installs FOLDER/gl's packages and points the Vulkan loader at NVIDIA's ICD, where the image has it.
setup_vulkan() {
  local f
  for f in "$1"/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  # Vulkan's window-system layers complain without it (lavapipe here, say).
  export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
  [ -f $NVIDIA_ICD ] && export VK_DRIVER_FILES=${VK_DRIVER_FILES:-$NVIDIA_ICD}
  return 0
}

# FOLDER's data files into DEST: xz unpacked (and gzipped again, quickly, with a third argument
# `gz`, for readers that open FILE.gz), the others copied.
unpack_data() {
  local from=$1 to=$2 gz=${3:-} f name
  mkdir -p "$to"
  for f in "$from"/*; do
    case $f in
      *.xz)
        name=$(basename "$f" .xz)
        if [ "$gz" = gz ]; then unxz "$f" | gzip -1 > "$to/$name.gz"; else unxz "$f" > "$to/$name"; fi ;;
      *) cp "$f" "$to/" ;;
    esac
  done
}

# The GPU (nvidia-smi -L) and what FOLDER was built from, as WHAT.
describe() {
  nvidia-smi -L 2>&1 || echo "no nvidia-smi"
  echo "$2 from $(cat "$1/commit" 2>/dev/null)"
}
