# Sourced by the provisioning scripts that take jars from Maven Central (services.sh, the e2e
# stand-ins), with the repository cached in .cache/m2.

# maven_copy_dependencies POM OUTDIR LOG: POM's runtime dependencies into OUTDIR (absolute).
# Maven Central answers 503 now and then: three tries, 10 s and 30 s apart; after the last, the
# end of LOG on stderr.
maven_copy_dependencies() {
  local pom=$1 out=$2 log=$3 wait
  for wait in 10 30 fail; do
    mvn -B -f "$pom" -Dmaven.repo.local="$PWD/.cache/m2" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DoutputDirectory="$out" -DincludeScope=runtime >"$log" 2>&1 && return 0
    [ "$wait" = fail ] && { tail -40 "$log" >&2; return 1; }
    echo "provision: Maven failed ($(grep -m1 -o 'status: [0-9]* [A-Za-z ]*' "$log" || echo see log)); again in $wait s"
    sleep "$wait"
  done
}
