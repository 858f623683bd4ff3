#!/usr/bin/env bash
# Makes sure a RabbitMQ answers on the configured URL; starts the local one if it is ours to start.
set -euo pipefail
url=${MODELGATE_RABBITMQ_URL:-amqp://guest:guest@127.0.0.1:5672/}
hostport=${url#*@}; hostport=${hostport%%/*}
host=${hostport%%:*}; port=${hostport##*:}; [ "$port" = "$host" ] && port=5672
open() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
open && exit 0
if [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ]; then
  echo "RabbitMQ at $host:$port is not reachable; start it or fix MODELGATE_RABBITMQ_URL." >&2
  exit 1
fi
echo "RabbitMQ is not running on $host:$port; starting it (rabbitmq-server -detached)"
rabbitmq-server -detached >/dev/null 2>&1 || /usr/sbin/rabbitmq-server -detached
for _ in $(seq 1 120); do open && { sleep 1; exit 0; }; sleep 1; done
echo "RabbitMQ did not come up in 120 s; see /var/log/rabbitmq/." >&2
exit 1
