# Sourced by the install scripts: Debian packages of other suites, downloaded and unpacked into
# .tools/ without touching the system's apt configuration.
# TOOLS must be set (the project's .tools directory).

# debian_mirror: the same mirror as the system's own sources (deb822 first, the one-line
# format as a fallback), looked up only when something is fetched.
debian_mirror() {
  local found
  found=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [ -z "$found" ] && [ -f /etc/apt/sources.list ]; then
    found=$(awk '$1 == "deb" && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
  fi
  if [ -z "$found" ]; then
    echo "no Debian mirror in the machine's apt sources (/etc/apt/sources.list.d/debian.sources)" >&2
    return 1
  fi
  printf '%s\n' "$found"
}

# fetch SUITE ROOT PACKAGE...: download the packages of SUITE and unpack them into ROOT.
fetch() {
  local suite=$1 root=$2 mirror
  local apt_dir="$TOOLS/apt/$suite"
  shift 2
  mirror=$(debian_mirror)
  mkdir -p "$apt_dir/sources.list.d" "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" \
    "$apt_dir/debs" "$root"
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
    "$mirror" "$suite" /usr/share/keyrings/debian-archive-keyring.gpg \
    >"$apt_dir/sources.list.d/$suite.sources"
  local apt_opts=(
    -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
    -o "Dir::Etc::SourceList=/dev/null"
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::Cache=$apt_dir/cache"
    -o "APT::Sandbox::User=root"
    -o "Debug::NoLocking=1"
  )
  echo "fetching $suite packages from $mirror: $*"
  apt-get "${apt_opts[@]}" -qq update
  (cd "$apt_dir/debs" && rm -f ./*.deb && apt-get "${apt_opts[@]}" -qq download "$@")
  : >"$root/PACKAGES"
  local deb
  for deb in "$apt_dir"/debs/*.deb; do
    dpkg-deb -x "$deb" "$root"
    echo "$(dpkg-deb -f "$deb" Package) $(dpkg-deb -f "$deb" Version)" >>"$root/PACKAGES"
  done
}

