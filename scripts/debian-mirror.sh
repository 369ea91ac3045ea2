#!/usr/bin/env bash
# Prints the Debian archive this machine's apt already uses, for debootstrap and for the
# chroots built from it: the repo names no mirror host. DEBIAN_MIRROR overrides it.
# The archive is the deb source whose suite is this machine's own codename (bookworm, not
# bookworm-updates or bookworm-security); both apt formats are read (one-line *.list and
# deb822 *.sources). Usage: debian-mirror.sh; exits 1, saying why, when none is found.
set -euo pipefail
if [[ -n ${DEBIAN_MIRROR:-} ]]; then echo "$DEBIAN_MIRROR"; exit 0; fi
etc=${APT_ETC:-/etc/apt}   # tests point it at a fake tree
codename=${DEBIAN_CODENAME:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[[ -n $codename ]] || { echo "debian-mirror.sh: no VERSION_CODENAME in /etc/os-release; set DEBIAN_MIRROR" >&2; exit 1; }

# "URI SUITE" for every enabled deb source.
sources() {
  local f
  for f in "$etc/sources.list" "$etc"/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    # deb [options] URI SUITE COMPONENTS...; the options bracket may hold spaces.
    sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 3 {print $2, $3}'
  done
  for f in "$etc"/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk 'function flush(  i, j, u, s, nu, ns) {
           if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
             nu = split(uris, u, " "); ns = split(suites, s, " ")
             for (i = 1; i <= nu; i++) for (j = 1; j <= ns; j++) print u[i], s[j]
           }
           types = uris = suites = enabled = ""
         }
         /^[ \t]*#/ {next}
         /^[ \t]*$/ {flush(); next}
         { key = tolower($1); sub(/^[^:]*:[ \t]*/, "")
           if (key == "types:") types = $0; else if (key == "uris:") uris = $0
           else if (key == "suites:") suites = $0; else if (key == "enabled:") enabled = $0 }
         END {flush()}' "$f"
  done
}

mirror=$(sources | awk -v c="$codename" '$2 == c {print $1; exit}')
[[ -n $mirror ]] || { echo "debian-mirror.sh: no deb source for suite $codename in $etc; set DEBIAN_MIRROR" >&2; exit 1; }
echo "${mirror%/}"
