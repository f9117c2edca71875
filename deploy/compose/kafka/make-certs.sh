#!/usr/bin/env bash
# Make a private CA and the certificates the compose topology mounts from ./secrets:
# one broker certificate for the three brokers, the admin's, and one per member given as
# arguments (ISO codes), e.g. `./make-certs.sh FR DE BE`. Development and staging only:
# production certificates come from your PKI.
set -euo pipefail
cd "$(dirname "$0")/../secrets"
days=365
[ -f kafka-ca.key ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
  -keyout kafka-ca.key -out kafka-ca.pem -days "$days" -subj "/CN=caseshare kafka CA"
issue() { # name, subjectAltName
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" \
    -out "$1.csr" -subj "/CN=$1"
  openssl x509 -req -in "$1.csr" -CA kafka-ca.pem -CAkey kafka-ca.key -CAcreateserial \
    -out "$1.pem" -days "$days" -extfile <(printf 'subjectAltName=%s' "$2")
  rm "$1.csr"
}
issue kafka-broker "DNS:kafka-1,DNS:kafka-2,DNS:kafka-3,DNS:localhost"
cat kafka-broker.key kafka-broker.pem > kafka-broker-keystore.pem
issue kafka-admin "DNS:kafka-admin"
cat kafka-admin.key kafka-admin.pem > kafka-admin-keystore.pem
for code in "$@"; do
  issue "member-$(echo "$code" | tr '[:upper:]' '[:lower:]')" "DNS:member"
done
chmod 600 ./*.key ./*keystore.pem
