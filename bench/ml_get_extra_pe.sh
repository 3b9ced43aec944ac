#!/usr/bin/env bash
# Builds the second benign PE corpus for the PE model: Windows PE files (MZ and a valid PE
# header) from Debian packages only, built by toolchains other than the Wine one in
# ../shared/corpus/get-benign-pe.sh (which stays the first corpus, .corpus/benign-pe).
#
#   usage: bench/ml_get_extra_pe.sh [DEST]        (default DEST: ./.corpus/benign-pe-extra)
#
# Needs apt-get, apt-cache, dpkg-deb and unzip; run 'apt-get update' once first. Each package
# is looked up with 'apt-cache show' and skipped (and reported) when the archive lacks it.
# Files are deduplicated by SHA-256 (the first copy in the order below is kept).
#
# Layout, read by tools/ml/dataset.py (a "source" is one toolchain or kind of file):
#   DEST/<source>/<flattened path>          family = the file name less version and variant
#   DEST/<source>/<group>/<flattened path>  family = <group> (one project: its files, signed
#                                           and unsigned, 32- and 64-bit, never straddle the
#                                           train/held-out split)
#   DEST/SOURCES.tsv                        source, group, package, version, PE files kept
#
# DEST must not exist: the corpus is built in a temporary folder beside it and renamed into
# place at the end, so a reader never sees a half-built corpus and no file is ever rewritten.
# It replaces bench/ml_get_mingw_pe.sh: its NSIS and MinGW packages are the sources nsis, mingw.
set -euo pipefail
dest=${1:-./.corpus/benign-pe-extra}
dest=${dest%/}
if [ -e "$dest" ]; then
  echo "$dest exists: remove it first (corpora are never rewritten in place)" >&2
  exit 1
fi
for tool in apt-get apt-cache dpkg-deb unzip sha256sum od; do
  command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done

# source  group  package  ("-" as group: families come from the file names). Looked at and
# left out because they hold no PE file: mono-runtime-common, libmono-corlib4.5-cil (its
# mscorlib.dll is not a PE file here), ovmf (firmware volumes). python3-pip-whl is kept
# although Debian's pip wheel has no distlib launcher (removed from its +dfsg source).
packages=(
  "python-launchers - python3-setuptools-whl"
  "python-launchers - python3-pip-whl"
  "dotnet mono-system libmono-system4.0-cil"
  "dotnet mono-system-core libmono-system-core4.0-cil"
  "dotnet mono-system-xml libmono-system-xml4.0-cil"
  "dotnet mono-system-data libmono-system-data4.0-cil"
  "dotnet mono-system-web libmono-system-web4.0-cil"
  "dotnet mono-system-windows-forms libmono-system-windows-forms4.0-cil"
  "dotnet mono-system-drawing libmono-system-drawing4.0-cil"
  "dotnet mono-microsoft-csharp libmono-microsoft-csharp4.0-cil"
  "dotnet mono-system-runtime-serialization libmono-system-runtime-serialization4.0-cil"
  "dotnet mono-system-servicemodel libmono-system-servicemodel4.0a-cil"
  "dotnet mono-mcs mono-mcs"
  "dotnet mono-xbuild mono-xbuild"
  "dotnet mono-csharp-shell mono-csharp-shell"
  "dotnet mono-cecil libmono-cecil-cil"
  "dotnet gtk-sharp libgtk2.0-cil"
  "dotnet nuget nuget"
  "dotnet keepass2 keepass2"
  "efi grub grub-efi-amd64-bin"
  "efi grub grub-efi-ia32-bin"
  "efi grub grub-efi-amd64-signed"
  "efi shim shim-unsigned"
  "efi shim shim-signed"
  "efi shim shim-helpers-amd64-signed"
  "efi refind refind"
  "efi efitools efitools"
  "efi systemd-boot systemd-boot-efi"
  "efi syslinux syslinux-efi"
  "efi ipxe ipxe"
  "efi memtest86plus memtest86+"
  "efi fwupd fwupd-amd64-signed"
  "win32-loader - win32-loader"
  "nsis - nsis-common"
  "mingw - gcc-mingw-w64-i686-win32-runtime"
  "mingw - gcc-mingw-w64-x86-64-win32-runtime"
  "mingw - gcc-mingw-w64-i686-posix-runtime"
  "mingw - gcc-mingw-w64-x86-64-posix-runtime"
  "mingw - libz-mingw-w64"
  "mingw - gdb-mingw-w64-target"
  "mingw - libgcrypt-mingw-w64-dev"
  "mingw - libgpg-error-mingw-w64-dev"
  "mingw - libassuan-mingw-w64-dev"
  "mingw - libksba-mingw-w64-dev"
  "mingw - libnpth-mingw-w64-dev"
  "wine32 - wine32"
)

parent=$(dirname "$dest")
mkdir -p "$parent"
build=$(mktemp -d "$parent/.$(basename "$dest").build.XXXXXX")
work=$(mktemp -d)
trap 'rm -rf "$work" "$build"' EXIT
declare -A seen=()

# True when $1 starts with MZ and e_lfanew (<= 64 KiB) points at "PE\0\0" followed, after the
# 20-byte file header, by an optional header with magic 0x10b (PE32) or 0x20b (PE32+).
is_pe() {
  local f=$1 lfanew sig magic
  [ "$(od -An -tx1 -N2 "$f" | tr -d ' \n')" = "4d5a" ] || return 1
  lfanew=$(od -An -tu4 -j60 -N4 "$f" | tr -d ' \n')
  [ -n "$lfanew" ] && [ "$lfanew" -le 65536 ] || return 1
  sig=$(od -An -tx1 -j"$lfanew" -N4 "$f" | tr -d ' \n')
  [ "$sig" = "50450000" ] || return 1
  magic=$(od -An -tx1 -j$((lfanew + 24)) -N2 "$f" | tr -d ' \n')
  [ "$magic" = "0b01" ] || [ "$magic" = "0b02" ]
}

# Look every package up first, then download all of them with one apt-get call.
avail=()
for entry in "${packages[@]}"; do
  read -r _source _group pkg <<<"$entry"
  info=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null || true)
  if [[ $info == *"Package: $pkg"* ]]; then
    avail+=("$pkg")
  else
    echo "skipped $pkg: not in the package archive for $(dpkg --print-architecture)" >&2
  fi
done
mkdir -p "$work/dl"
( cd "$work/dl" && apt-get download "${avail[@]}" >/dev/null 2>&1 ) || {
  echo "apt-get download failed: run 'apt-get update' first" >&2; exit 1; }

printf 'source\tgroup\tpackage\tversion\tpe_files\n' >"$work/sources.tsv"
for entry in "${packages[@]}"; do
  read -r source group pkg <<<"$entry"
  debs=("$work/dl/${pkg}"_*.deb)
  deb=${debs[0]}
  if [ ! -f "$deb" ]; then
    printf '%s\t%s\t%s\t-\tnot in the archive\n' "$source" "$group" "$pkg" >>"$work/sources.tsv"
    continue
  fi
  version=$(dpkg-deb -f "$deb" Version)
  rm -rf "$work/x"
  mkdir -p "$work/x"
  dpkg-deb -x "$deb" "$work/x"
  # Python wheels are zip files: their launchers (.exe) are inside.
  while IFS= read -r -d '' whl; do
    unzip -q -o "$whl" -d "$whl.d"
  done < <(find "$work/x" -type f -name '*.whl' -print0 | sort -z)
  outdir="$build/$source"
  [ "$group" = "-" ] || outdir="$outdir/$group"
  n=0
  while IFS= read -r -d '' f; do
    is_pe "$f" || continue
    sha=$(sha256sum "$f" | cut -d' ' -f1)
    [ -z "${seen[$sha]:-}" ] || continue
    seen[$sha]=1
    rel=${f#"$work/x/"}
    mkdir -p "$outdir"
    cp "$f" "$outdir/${rel//\//__}"
    n=$((n + 1))
  done < <(find "$work/x" -type f -size +1k -print0 | sort -z)
  printf '%s\t%s\t%s\t%s\t%s\n' "$source" "$group" "$pkg" "$version" "$n" >>"$work/sources.tsv"
  echo "$source/$group: $pkg $version: $n PE files"
done

cp "$work/sources.tsv" "$build/SOURCES.tsv"
mv "$build" "$dest"
echo "== PE files per source (distinct by SHA-256):"
for d in "$dest"/*/; do
  echo "  $(basename "$d"): $(find "$d" -type f | wc -l)"
done
echo "$(find "$dest" -type f ! -name SOURCES.tsv | wc -l) benign PE files in $dest"
