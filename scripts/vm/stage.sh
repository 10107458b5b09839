# Builds the VM lane's initramfs. Sourced by scripts/vm/lane, not run.
#
# The initramfs is three newc cpio archives, concatenated (the kernel unpacks them one after the other):
#   base       busybox and its applet links, /init, dash, ip, nft, socat, ipvsadm and their libraries;
#              cached under .build-vm/segments, rebuilt when any of those files changes;
#   libraries  the shared libraries of the run's --binary programs that base lacks (for Keel's debug
#              builds, the Swift runtime: ≈80 MB); cached by the libraries' paths, sizes and times, so
#              rebuilding Keel does not rebuild it;
#   run        the programs themselves, --file files, the modules and the script: made for each run.
# Uncompressed: under TCG the guest decompresses slowly, and these stay in the host's page cache.
# Guest paths follow Debian 12's merged /usr: bin, sbin, lib and lib64 link into usr/, and every file
# is stored under usr/ so the three archives never disagree about those links.

# The host tools every guest gets, for verification and traffic (ipvsadm comes from the tools cache).
# dash is the guest's /bin/sh: busybox's sh runs its own applet for a command name before it searches
# PATH (so `ip` would be busybox's, in every `sh -c` too); dash finds iproute2's ip in /usr/sbin first.
LANE_HOST_TOOLS=(/usr/bin/dash /usr/sbin/ip /usr/sbin/nft /usr/bin/socat)

# /lib/x/y -> /usr/lib/x/y (and bin, sbin, lib64): the path a file has in the guest's tree.
guest_path() {
  case $1 in
    /lib/* | /lib64/* | /bin/* | /sbin/*) echo "/usr$1" ;;
    *) echo "$1" ;;
  esac
}

# Copies one file into the tree, replacing a link that was there (copying onto a busybox applet link
# would otherwise overwrite busybox itself).
stage_file() {
  local source=$1 root=$2 guest; guest=$(guest_path "$3")
  mkdir -p "$root$(dirname "$guest")"
  rm -f "$root$guest"
  cp -L --preserve=mode,timestamps "$source" "$root$guest"
}

# Prints "<host path> <guest path>" for each shared library a program loads (ldd's answer, the dynamic
# loader included). Libraries under $2 (an unpacked package root) keep the path they have inside it.
library_closure() {
  local program=$1 package_root=${2:-} output library
  if ! output=$(LD_LIBRARY_PATH=${package_root:+$package_root/usr/lib/x86_64-linux-gnu:$package_root/lib/x86_64-linux-gnu} ldd "$program" 2>&1); then
    return 0   # static, or a script: nothing to add
  fi
  if grep -q "not found" <<< "$output"; then
    echo "lane: $program needs libraries the host does not have:" >&2
    grep "not found" <<< "$output" >&2
    return 1
  fi
  for library in $(awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<< "$output"); do
    if [ -n "$package_root" ] && [[ "$library" == "$package_root"/* ]]; then
      echo "$library $(guest_path "${library#"$package_root"}")"
    else
      echo "$library $(guest_path "$library")"
    fi
  done
}

# Writes the tree's newc archive to $2 (atomically: a concurrent run sees all of it or none).
write_cpio() {
  local root=$1 out=$2
  (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) > "$out.tmp.$$"
  mv "$out.tmp.$$" "$out"
}

# A key from the names, sizes and modification times of files (and any extra words).
files_key() {
  { printf '%s\n' "$@" | LC_ALL=C sort -u | while read -r f; do
      if [ -e "$f" ]; then stat -L -c '%n %s %Y' "$f"; else echo "$f"; fi
    done; } | sha256sum | cut -c1-16
}

# Drops segments nobody used for two days (each use touches its archive).
prune_segments() {
  local segments=$1
  find "$segments" -maxdepth 1 -name '*.cpio' -mtime +2 -print 2>/dev/null | while read -r old; do
    rm -rf "$old" "${old%.cpio}.tree"
  done
}

# base_segment SEGMENTS TOOLS_ROOT: prints the base archive's path (its tree sits next to it as .tree).
base_segment() {
  local segments=$1 tools_root=$2 closure key
  closure=$(for tool in "${LANE_HOST_TOOLS[@]}"; do library_closure "$tool"; done
            library_closure "$tools_root/sbin/ipvsadm" "$tools_root")
  key=$(files_key "$here/stage.sh" "$here/guest-init" /usr/bin/busybox "${LANE_HOST_TOOLS[@]}" \
    "$tools_root/sbin/ipvsadm" $(awk '{print $1}' <<< "$closure"))
  local archive=$segments/base-$key.cpio tree=$segments/base-$key.tree
  if [ -f "$archive" ]; then touch "$archive"; echo "$archive"; return 0; fi

  rm -rf "$tree"
  mkdir -p "$tree"/{usr/bin,usr/sbin,usr/lib,usr/lib64,dev,proc,sys,run,tmp,root,var,etc,lane/bin}
  local d; for d in bin sbin lib lib64; do ln -s "usr/$d" "$tree/$d"; done
  mknod -m 600 "$tree/dev/console" c 5 1 2>/dev/null || true   # init reopens it after mounting devtmpfs
  stage_file /usr/bin/busybox "$tree" /usr/bin/busybox
  local applet
  for applet in $(/usr/bin/busybox --list-full); do
    applet=$(guest_path "/$applet")
    [ -e "$tree$applet" ] || [ -L "$tree$applet" ] || ln -s /usr/bin/busybox "$tree$applet"
  done
  stage_file "$here/guest-init" "$tree" /init
  chmod 755 "$tree/init"
  echo "root:x:0:0:root:/root:/bin/sh" > "$tree/etc/passwd"
  echo "root:x:0:" > "$tree/etc/group"
  local tool host guest
  for tool in "${LANE_HOST_TOOLS[@]}"; do stage_file "$tool" "$tree" "$tool"; done
  ln -sfn dash "$tree/usr/bin/sh"
  stage_file "$tools_root/sbin/ipvsadm" "$tree" /usr/sbin/ipvsadm
  while read -r host guest; do
    [ -e "$tree$guest" ] || stage_file "$host" "$tree" "$guest"
  done <<< "$closure"
  write_cpio "$tree" "$archive"
  echo "$archive"
}

# library_segment SEGMENTS BASE_TREE PROGRAM...: prints the archive with the programs' libraries that
# base lacks, or nothing when base has them all.
library_segment() {
  local segments=$1 base_tree=$2; shift 2
  local closure="" program host guest
  for program in "$@"; do closure+=$(library_closure "$program")$'\n' || return 1; done
  local missing=()
  while read -r host guest; do
    [ -n "$host" ] && [ ! -e "$base_tree$guest" ] && missing+=("$host $guest")
  done <<< "$closure"
  [ ${#missing[@]} -gt 0 ] || return 0
  local key; key=$(files_key $(printf '%s\n' "${missing[@]}" | awk '{print $1}'))
  local archive=$segments/libraries-$key.cpio
  if [ -f "$archive" ]; then touch "$archive"; echo "$archive"; return 0; fi
  local tree; tree=$(mktemp -d "$segments/libraries.XXXXXX")
  local entry
  for entry in "${missing[@]}"; do
    read -r host guest <<< "$entry"
    [ -e "$tree$guest" ] || stage_file "$host" "$tree" "$guest"
  done
  write_cpio "$tree" "$archive"
  rm -rf "$tree"
  echo "$archive"
}

# Copies the modules (and their dependencies) into the tree and writes /lane/insmod.list: one module
# file and its options a line, dependencies first. Modules are stored decompressed: busybox insmod
# reads plain .ko (Debian 12 ships them plain, later releases compress them).
stage_modules() {
  local root=$1 kernel_root=$2 release=$3; shift 3
  local names=() options=() word
  for word in "$@"; do
    if [[ "$word" == *=* ]]; then
      [ ${#names[@]} -gt 0 ] || { echo "lane: module option $word names no module before it" >&2; return 1; }
      options[${#names[@]}-1]+=" $word"
    else
      names+=("$word"); options+=("")
    fi
  done
  local i
  for i in "${!names[@]}"; do
    # An unexpected dummy0 confuses tests that count links: guests create their dummies by name.
    if [ "${names[$i]}" = dummy ] && [[ "${options[$i]}" != *numdummies=* ]]; then options[i]+=" numdummies=0"; fi
  done

  local modules_dir=/usr/lib/modules/$release
  mkdir -p "$root$modules_dir" "$root/lane"
  : > "$root/lane/insmod.list"
  # -C: the host's /etc/modprobe.d must not add options to the guest's modules.
  local empty_config=$root/.empty-modprobe.d
  mkdir -p "$empty_config"
  local seen=" " line kind path guest plain
  for i in "${!names[@]}"; do
    if ! line=$(modprobe -C "$empty_config" --show-depends -d "$kernel_root" -S "$release" "${names[$i]}" 2>&1); then
      echo "lane: kernel $release has no module ${names[$i]}: $line" >&2
      return 1
    fi
    while read -r kind path _; do
      [ "$kind" = insmod ] || continue   # "builtin NAME": nothing to load
      guest=$(guest_path "${path#"$kernel_root"}")
      plain=${guest%.xz}; plain=${plain%.zst}; plain=${plain%.gz}
      [[ "$seen" == *" $plain "* ]] && continue
      seen+="$plain "
      mkdir -p "$root$(dirname "$plain")"
      case $path in
        *.xz) xz -dc "$path" > "$root$plain" ;;
        *.zst) zstd -qdc "$path" > "$root$plain" ;;
        *.gz) gzip -dc "$path" > "$root$plain" ;;
        *) cp "$path" "$root$plain" ;;
      esac
      local module=${plain##*/}; module=${module%.ko}
      if [ "${module//-/_}" = "${names[$i]//-/_}" ]; then
        echo "$plain${options[$i]}" >> "$root/lane/insmod.list"
      else
        echo "$plain" >> "$root/lane/insmod.list"
      fi
    done <<< "$line"
  done
  rmdir "$empty_config"
  cp "$kernel_root/lib/modules/$release"/modules.{order,builtin,builtin.modinfo} "$root$modules_dir/"
  # depmod only knows <root>/lib/modules: lend it the merged-/usr link for a moment.
  ln -s usr/lib "$root/lib"
  depmod -b "$root" "$release"   # so busybox modprobe in the guest finds what is there
  rm "$root/lib"
}

# stage_run ROOT KERNEL_ROOT RELEASE SCRIPT: the run's own archive tree; reads the caller's arrays
# binaries (host paths), files (HOST:GUEST) and modules (names and options).
stage_run() {
  local root=$1 kernel_root=$2 release=$3 script=$4
  mkdir -p "$root/lane/bin"
  local binary guest
  for binary in ${binaries[@]+"${binaries[@]}"}; do
    guest=$(guest_path "$binary")
    stage_file "$binary" "$root" "$guest"
    ln -sf "$guest" "$root/lane/bin/$(basename "$binary")"
  done
  local spec host
  for spec in ${files[@]+"${files[@]}"}; do
    host=${spec%%:*}; guest=$(guest_path "${spec#*:}")
    mkdir -p "$root$(dirname "$guest")"
    rm -rf "${root:?}$guest"
    cp -a -L "$host" "$root$guest"
  done
  cp "$script" "$root/lane/script.sh"
  stage_modules "$root" "$kernel_root" "$release" ${modules[@]+"${modules[@]}"}
}
