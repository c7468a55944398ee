#!/usr/bin/env bash
# A single-node Apache Kafka 4.x broker (KRaft, no ZooKeeper) on loopback.
#
#   scripts/kafka.sh install              fetch the jars from Maven Central (cached)
#   scripts/kafka.sh classpath            print the classpath (installs first)
#   scripts/kafka.sh start DIR PORT CPORT format DIR and run a broker in the foreground
#                                         (exec: the caller's pid is the broker's pid)
#
# The jars come from Maven Central with `mvn dependency:copy-dependencies`
# (kafka_2.13 plus slf4j and a log4j backend), into $CHATRELAY_KAFKA_CACHE
# (default ~/.cache/chatrelay/kafka-$VERSION), once. Java 17 comes from
# scripts/install-system-deps.sh.
set -euo pipefail

VERSION="${CHATRELAY_KAFKA_VERSION:-4.3.1}"
SLF4J_VERSION="2.0.17"
LOG4J_VERSION="2.25.4"
CACHE="${CHATRELAY_KAFKA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chatrelay/kafka-$VERSION}"
LIBS="$CACHE/libs"

install() {
  if [ -f "$LIBS/.complete" ]; then
    return 0
  fi
  command -v mvn >/dev/null || { echo "kafka.sh: mvn not found (scripts/install-system-deps.sh installs it)" >&2; exit 1; }
  mkdir -p "$CACHE"
  cat >"$CACHE/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>chatrelay</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$LIBS"
  mvn -q -B -f "$CACHE/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$CACHE/mvn.log" 2>&1 || {
    echo "kafka.sh: mvn failed, see $CACHE/mvn.log" >&2
    tail -20 "$CACHE/mvn.log" >&2
    exit 1
  }
  cat >"$CACHE/log4j2.properties" <<'EOF'
rootLogger.level = WARN
rootLogger.appenderRef.stdout.ref = STDOUT
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
logger.kafka.name = kafka
logger.kafka.level = WARN
EOF
  touch "$LIBS/.complete"
}

classpath() {
  install
  echo "$LIBS/*"
}

start() {
  local dir="$1" port="$2" controller_port="$3"
  install
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
num.partitions=4
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
# A SIGKILLed broker that restarts must not wait out its own old session.
broker.session.timeout.ms=2000
broker.heartbeat.interval.ms=500
EOF
  local java_opts=(-Xms128m -Xmx512m -XX:+UseSerialGC -Dlog4j2.configurationFile="$CACHE/log4j2.properties")
  if [ ! -f "$dir/data/meta.properties" ]; then
    java "${java_opts[@]}" -cp "$LIBS/*" kafka.tools.StorageTool format --standalone \
      --cluster-id "$(java -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)" \
      --config "$dir/server.properties" >"$dir/format.log" 2>&1
  fi
  exec java "${java_opts[@]}" -cp "$LIBS/*" kafka.Kafka "$dir/server.properties"
}

case "${1:-}" in
  install) install ;;
  classpath) classpath ;;
  start) shift; start "$@" ;;
  *) echo "usage: $0 install | classpath | start DIR PORT CONTROLLER_PORT" >&2; exit 2 ;;
esac
