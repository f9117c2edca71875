#!/usr/bin/env bash
# One-shot: create the hub's SCRAM users, then apply the ACL plan (deploy/README.md,
# "Kafka access per member"). Runs as the super user over mutual TLS; safe to run again.
set -euo pipefail
BOOTSTRAP=kafka-1:9092
CONFIG=/etc/kafka/admin.properties
# shellcheck disable=SC1091 # ROUTER_PASSWORD and TOPICS_PASSWORD, from the secret
source /run/secrets/kafka-scram.env
for user in caseshare-router:"$ROUTER_PASSWORD" caseshare-topics:"$TOPICS_PASSWORD"; do
  name=${user%%:*}
  password=${user#*:}
  /opt/kafka/bin/kafka-configs.sh --bootstrap-server "$BOOTSTRAP" --command-config "$CONFIG" \
    --alter --entity-type users --entity-name "$name" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$password]"
done
export BOOTSTRAP
export PATH=/opt/kafka/bin:$PATH
# kafka-acls.sh lines rendered from the plan with --command-config admin.properties
(cd /etc/kafka && bash /run/secrets/kafka-acls.sh)
