# Prints the URI of the Debian archive that a host's apt sources already use, and exits 1 when they
# name none. Used by tasks/debian-mirror.yml and by scripts/debian-rootfs.sh (the local base images).
#
#   awk -v codename=bookworm -f debian-archive-uri.awk /etc/apt/sources.list.d/*.sources /etc/apt/sources.list
#
# The files may be deb822 (stanzas of Types/URIs/Suites/Components fields) or one-line ("deb URI
# suite component..."); files that cannot be read (an unmatched glob, no sources.list) are skipped.
# The archive is the first enabled "deb" source, in the order of the files, whose suites include the
# release `codename` itself (so not <codename>-security, which is another archive, nor -updates) and
# whose components include main (which third-party repositories for that release seldom have).
# The URI is printed without a trailing slash.

function trim(s) {
  sub(/^[ \t]+/, "", s)
  sub(/[ \t]+$/, "", s)
  return s
}

function has(list, word,    n, i, w) {
  n = split(list, w)
  for (i = 1; i <= n; i++) if (w[i] == word) return 1
  return 0
}

function found(uri) {
  sub(/\/+$/, "", uri)
  print uri
  hit = 1
  exit 0
}

# The stanza just read: consider it, then forget it.
function stanza(    uris) {
  if (tolower(field["enabled"]) != "no" && has(field["types"], "deb") \
      && has(field["suites"], codename) && has(field["components"], "main")) {
    split(field["uris"], uris)
    if (uris[1] != "") found(uris[1])
  }
  split("", field)
  key = ""
}

BEGIN {
  if (codename == "") {
    print "debian-archive-uri.awk: set codename (-v codename=<release>)" > "/dev/stderr"
    usage = 1
    exit 2
  }
  for (i = 1; i < ARGC; i++) {
    if ((getline probe < ARGV[i]) < 0) delete ARGV[i]
    else close(ARGV[i])
  }
}

FNR == 1 { stanza() }                      # a new file: a stanza never runs on into the next
/^#/ { next }                              # a comment (deb822 and one-line alike)
/^[ \t]*$/ { stanza(); next }              # the blank line between two stanzas
/^[ \t]/ { if (key != "") field[key] = field[key] " " trim($0); next }   # a field's next line
$1 == "deb" {                              # one-line: deb [options] URI suite component...
  line = $0
  sub(/#.*/, "", line)
  sub(/\[[^]]*\]/, "", line)
  n = split(line, word)
  if (word[3] == codename) for (i = 4; i <= n; i++) if (word[i] == "main") found(word[2])
  key = ""
  next
}
/^[A-Za-z][A-Za-z0-9-]*:/ {
  key = tolower(substr($0, 1, index($0, ":") - 1))
  field[key] = trim(substr($0, index($0, ":") + 1))
  next
}

END {
  if (usage) exit 2
  if (!hit) stanza()
  exit hit ? 0 : 1
}
