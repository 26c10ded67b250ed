#!/usr/bin/env bash
# Local services for the tests that talk to real backends, all bound to 127.0.0.1:
#   Kafka (Apache Kafka 4.x broker jars from Maven Central, KRaft combined mode), an S3 server
#   (s3rver), Redis (Debian redis-server, installed when missing) and DynamoDB (dynalite, in memory);
#   also installs Debian's chromium when missing, for the dashboard's browser test.
#
#   scripts/services.sh up              start whatever is not running, wait until each answers,
#                                       write .services/env (export lines for the real layers)
#   scripts/services.sh down [--clean]  stop everything (--clean also drops the data dirs)
#   scripts/services.sh restart-kafka   stop and start only the broker, wait until it answers
#   scripts/services.sh status          what runs, and whether it answers
#
# State and logs live in .services/, downloaded jars in .cache/ (both git-ignored).
# Overrides: RECON_KAFKA_VERSION, RECON_KAFKA_PORT, RECON_KAFKA_CONTROLLER_PORT, RECON_S3_PORT,
# RECON_REDIS_PORT, RECON_DYNAMODB_PORT, RECON_SERVICES_TIMEOUT (seconds per service).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/scripts/services"
STATE="$ROOT/.services"
LOGS="$STATE/logs"
PIDS="$STATE/pids"
CACHE="$ROOT/.cache"

HOST=127.0.0.1
KAFKA_VERSION="${RECON_KAFKA_VERSION:-4.4.0}"
KAFKA_PORT="${RECON_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${RECON_KAFKA_CONTROLLER_PORT:-19093}"
S3_PORT="${RECON_S3_PORT:-19000}"
REDIS_PORT="${RECON_REDIS_PORT:-16379}"
DYNAMODB_PORT="${RECON_DYNAMODB_PORT:-18000}"
TIMEOUT="${RECON_SERVICES_TIMEOUT:-120}"
OFFSETS_PARTITIONS=8
STOP_TIMEOUT=30

KAFKA_HOME="$CACHE/kafka-$KAFKA_VERSION"
KAFKA_LIB="$KAFKA_HOME/lib"
KAFKA_DATA="$STATE/kafka-data"
KAFKA_CONF="$STATE/kafka/server.properties"
S3_DATA="$STATE/s3-data"
REDIS_DATA="$STATE/redis-data"
SERVICES=(kafka s3 redis dynamodb)

log() { printf '%s\n' "$*" >&2; }
die() {
  log "services: $*"
  exit 1
}
now() { echo "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

port_of() {
  case "$1" in
    kafka) echo "$KAFKA_PORT" ;;
    s3) echo "$S3_PORT" ;;
    redis) echo "$REDIS_PORT" ;;
    dynamodb) echo "$DYNAMODB_PORT" ;;
  esac
}

# Prints the pid of a service this script started, if that process is still alive and is still
# that service (not an unrelated process that got the recycled pid).
running_pid() {
  local file="$PIDS/$1.pid" pid marker
  [[ -f $file ]] || return 1
  pid="$(<"$file")"
  case "$1" in
    kafka) marker=kafka.Kafka ;;
    s3) marker=s3rver ;;
    redis) marker=redis-server ;;
    dynamodb) marker=dynalite ;;
  esac
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$marker"; then
    echo "$pid"
  else
    rm -f "$file"
    return 1
  fi
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

probe() {
  case "$1" in
    kafka) node "$HERE/probe.mjs" kafka "$HOST" "$KAFKA_PORT" 2>/dev/null ;;
    s3) node "$HERE/probe.mjs" http "http://$HOST:$S3_PORT/" 2>/dev/null ;;
    dynamodb) node "$HERE/probe.mjs" http "http://$HOST:$DYNAMODB_PORT/" 2>/dev/null ;;
    redis) [[ "$(redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] ;;
  esac
}

apt_updated=0
apt_install() {
  log "services: installing $* with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if [[ $apt_updated == 0 ]]; then
    apt-get update -qq >"$LOGS/apt.log" 2>&1 || die "apt-get update failed (see $LOGS/apt.log)"
    apt_updated=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >>"$LOGS/apt.log" 2>&1 ||
    die "apt-get install $* failed (see $LOGS/apt.log)"
}

require_tools() {
  command -v node >/dev/null || die "node is not on PATH"
  [[ -f "$ROOT/node_modules/s3rver/bin/s3rver.js" && -f "$ROOT/node_modules/dynalite/cli.js" ]] ||
    die "s3rver/dynalite missing from node_modules: run npm ci in $ROOT"
  local packages=()
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null || packages+=(redis-server)
  command -v java >/dev/null || packages+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || packages+=(maven)
  # Headless Chromium for the dashboard's browser test (playwright-core drives it; no browser download).
  command -v chromium >/dev/null || packages+=(chromium)
  ((${#packages[@]} == 0)) || apt_install "${packages[@]}"
}

# Resolves kafka_2.13:$KAFKA_VERSION and its runtime dependencies into .cache once.
ensure_kafka_jars() {
  [[ -f "$KAFKA_HOME/.complete" ]] && return 0
  local started staging
  started="$(now)"
  staging="$KAFKA_HOME/lib.partial"
  rm -rf "$staging" "$KAFKA_LIB"
  mkdir -p "$staging"
  log "services: resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION with mvn into ${KAFKA_LIB#"$ROOT"/}"
  if ! mvn -B -q -f "$HERE/kafka-pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$staging" >"$LOGS/kafka-mvn.log" 2>&1; then
    tail -n 30 "$LOGS/kafka-mvn.log" >&2
    die "kafka: mvn could not resolve kafka_2.13:$KAFKA_VERSION (log: $LOGS/kafka-mvn.log)"
  fi
  mv "$staging" "$KAFKA_LIB"
  touch "$KAFKA_HOME/.complete"
  log "services: kafka jars resolved in $(since "$started")"
}

KAFKA_JAVA=(java -Xms128m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
  -Dlog4j2.configurationFile="$HERE/kafka-log4j2.properties" -cp "$KAFKA_LIB/*")

write_kafka_config() {
  mkdir -p "$(dirname "$KAFKA_CONF")" "$KAFKA_DATA"
  cat >"$KAFKA_CONF" <<EOF
# Written by scripts/services.sh: single-node KRaft (broker and controller in one process).
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DATA
num.partitions=4
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=$OFFSETS_PARTITIONS
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
EOF
}

start_kafka() {
  ensure_kafka_jars
  write_kafka_config
  # Storage formatted by another Kafka version is dropped (a downgrade cannot read it).
  if [[ -f "$KAFKA_DATA/meta.properties" && "$(cat "$STATE/kafka/formatted-by" 2>/dev/null)" != "$KAFKA_VERSION" ]]; then
    log "services: kafka data was formatted by another Kafka version; formatting anew for $KAFKA_VERSION"
    rm -rf "$KAFKA_DATA"
    mkdir -p "$KAFKA_DATA"
  fi
  if [[ ! -f "$KAFKA_DATA/meta.properties" ]]; then
    local cluster_id
    cluster_id="$("${KAFKA_JAVA[@]}" kafka.tools.StorageTool random-uuid 2>>"$LOGS/kafka-format.log")" ||
      die "kafka: StorageTool random-uuid failed (log: $LOGS/kafka-format.log)"
    "${KAFKA_JAVA[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONF" >>"$LOGS/kafka-format.log" 2>&1 || {
      tail -n 20 "$LOGS/kafka-format.log" >&2
      die "kafka: formatting $KAFKA_DATA failed (log: $LOGS/kafka-format.log)"
    }
    echo "$KAFKA_VERSION" >"$STATE/kafka/formatted-by"
  fi
  launch kafka "${KAFKA_JAVA[@]}" kafka.Kafka "$KAFKA_CONF"
}

start_s3() {
  mkdir -p "$S3_DATA"
  # s3rver makes list continuation tokens with DES, which OpenSSL 3 (Node 20) refuses without the legacy
  # provider: every listing past 1000 keys would answer 500.
  launch s3 node --openssl-legacy-provider "$ROOT/node_modules/s3rver/bin/s3rver.js" --directory "$S3_DATA" \
    --address "$HOST" --port "$S3_PORT" \
    --configure-bucket "${RECON_S3_RAW_BUCKET:-recon-raw}" \
    --configure-bucket "${RECON_S3_PROCESSED_BUCKET:-recon-processed}"
}

start_redis() {
  mkdir -p "$REDIS_DATA"
  launch redis redis-server --bind "$HOST" --port "$REDIS_PORT" --dir "$REDIS_DATA" \
    --save "" --appendonly no --daemonize no --logfile ""
}

start_dynamodb() {
  launch dynamodb node "$ROOT/node_modules/dynalite/cli.js" --host "$HOST" --port "$DYNAMODB_PORT" \
    --createTableMs 0 --deleteTableMs 0 --updateTableMs 0
}

# Starts "$@" detached from this shell, output to .services/logs/<name>.log.
launch() {
  local name="$1"
  shift
  printf '=== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >"$LOGS/$name.log"
  setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
  STARTED_AT[$name]="$(now)"
}

# Reports a service that did not come up, stops it (so the next `up` starts it afresh) and exits.
fail_with_log() {
  local name="$1" reason="$2"
  log "services: $name $reason"
  log "--- last lines of $LOGS/$name.log:"
  tail -n 40 "$LOGS/$name.log" >&2 || true
  stop_services "$name"
  exit 1
}

wait_healthy() {
  local name="$1" pid deadline
  deadline=$((SECONDS + TIMEOUT))
  while ! probe "$name"; do
    pid="$(running_pid "$name")" || fail_with_log "$name" "exited before answering on $HOST:$(port_of "$name")"
    ((SECONDS < deadline)) || fail_with_log "$name" "(pid $pid) did not answer on $HOST:$(port_of "$name") within ${TIMEOUT}s"
    sleep 0.25
  done
  if [[ $name == kafka ]] && ! node "$HERE/probe.mjs" kafka-warm "$HOST" "$KAFKA_PORT" "$((deadline - SECONDS + 1))" "$OFFSETS_PARTITIONS" 2>"$LOGS/kafka-warm.err"; then
    fail_with_log kafka "answers Metadata but its coordinators did not become ready: $(<"$LOGS/kafka-warm.err")"
  fi
}

write_env() {
  local tmp="$STATE/env.tmp"
  cat >"$tmp" <<EOF
# Written by scripts/services.sh up: source it before running tests against the real services.
export RECON_KAFKA_BROKERS=$HOST:$KAFKA_PORT
export RECON_S3_ENDPOINT=http://$HOST:$S3_PORT
export RECON_S3_ACCESS_KEY_ID=S3RVER
export RECON_S3_SECRET_ACCESS_KEY=S3RVER
export RECON_REDIS_URL=redis://$HOST:$REDIS_PORT
export RECON_DYNAMODB_ENDPOINT=http://$HOST:$DYNAMODB_PORT
export RECON_CHROMIUM_PATH=$(command -v chromium)
export RECON_REQUIRE_SERVICES=1
EOF
  mv "$tmp" "$STATE/env"
}

declare -A STARTED_AT=()

cmd_up() {
  mkdir -p "$LOGS" "$PIDS"
  local name pid to_start=() up_started
  up_started="$(now)"
  for name in "${SERVICES[@]}"; do
    if pid="$(running_pid "$name")"; then
      continue
    fi
    if port_open "$(port_of "$name")"; then
      die "$name: port $HOST:$(port_of "$name") is already taken by a process this script did not start" \
        "(stop it, or pick another port with RECON_${name^^}_PORT)"
    fi
    to_start+=("$name")
  done
  if ((${#to_start[@]} > 0)); then
    require_tools
    # Kafka boots slowest, so it goes first (after any mvn download); the others start meanwhile.
    for name in kafka s3 dynamodb redis; do
      [[ " ${to_start[*]} " != *" $name "* ]] || "start_$name"
    done
  fi
  for name in s3 dynamodb redis kafka; do
    if [[ -n "${STARTED_AT[$name]:-}" ]]; then
      wait_healthy "$name"
      log "services: $name ready on $HOST:$(port_of "$name") in $(since "${STARTED_AT[$name]}") (pid $(<"$PIDS/$name.pid"))"
    else
      pid="$(running_pid "$name")"
      wait_healthy "$name"
      log "services: $name already running (pid $pid)"
    fi
  done
  write_env
  log "services: all up in $(since "$up_started"); env in ${STATE#"$ROOT"/}/env"
}

# SIGTERM, then SIGKILL after STOP_TIMEOUT seconds, for each named service.
stop_services() {
  local name pid deadline stopping=()
  for name in "$@"; do
    if pid="$(running_pid "$name")"; then
      kill -TERM "$pid" 2>/dev/null || true
      stopping+=("$name:$pid")
    fi
  done
  deadline=$((SECONDS + STOP_TIMEOUT))
  local entry
  for entry in "${stopping[@]}"; do
    name="${entry%%:*}"
    pid="${entry#*:}"
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "services: $name (pid $pid) ignored SIGTERM for ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    rm -f "$PIDS/$name.pid"
    log "services: $name stopped"
  done
}

cmd_down() {
  stop_services "${SERVICES[@]}"
  rm -f "$STATE/env"
  if [[ "${1:-}" == --clean ]]; then
    rm -rf "$KAFKA_DATA" "$S3_DATA" "$REDIS_DATA" "$STATE/kafka"
    log "services: data dirs removed"
  fi
}

cmd_restart_kafka() {
  mkdir -p "$LOGS" "$PIDS"
  local started
  stop_services kafka
  started="$(now)"
  start_kafka
  wait_healthy kafka
  log "services: kafka ready on $HOST:$KAFKA_PORT in $(since "$started") (pid $(<"$PIDS/kafka.pid"))"
}

cmd_status() {
  local name pid state all_up=0
  for name in "${SERVICES[@]}"; do
    if pid="$(running_pid "$name")"; then
      if probe "$name"; then state="answering"; else state="NOT answering"; fi
      printf '%-9s pid %-7s %s:%-6s %s\n' "$name" "$pid" "$HOST" "$(port_of "$name")" "$state"
      [[ $state == answering ]] || all_up=1
    else
      printf '%-9s %-11s %s:%-6s %s\n' "$name" "stopped" "$HOST" "$(port_of "$name")" ""
      all_up=1
    fi
  done
  return $all_up
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down "${2:-}" ;;
  restart-kafka) cmd_restart_kafka ;;
  status) cmd_status ;;
  *)
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
