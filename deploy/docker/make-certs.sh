#!/bin/sh
# The compose cluster's certificates, made once: the CA stays in /etc/ledger/ca (mounted by
# this one-shot service only); nodes and the gateway read copies of what they need from
# /etc/ledger/tls. A real deployment issues them on an offline machine (deploy/README.md).
set -eu
ca=/etc/ledger/ca
tls=/etc/ledger/tls
nodes=${LEDGER_NODES:-3}
if [ -f "$tls/ca.crt" ]; then
    echo "certificates already made"
    exit 0
fi
ledger-node certs init --dir "$ca"
i=1
while [ "$i" -le "$nodes" ]; do
    ledger-node certs issue --dir "$ca" --role node --id "$i"
    i=$((i + 1))
done
ledger-node certs issue --dir "$ca" --role operator --name init
ledger-node certs issue --dir "$ca" --role operator --name admin
ledger-node certs issue --dir "$ca" --role gateway --name http --host "${LEDGER_GATEWAY_HOST:-localhost}"
# The cluster's master secret: the same 32 random bytes on every node.
head -c 32 /dev/urandom > "$ca/master.key"
chmod 0600 "$ca/master.key"
# An auditor's API key for the gateway, shown to whoever runs the cluster (docker compose
# exec node1 cat /etc/ledger/tls/auditor.apikey); merchants' keys are issued the same way.
ledger-gateway keys issue --file "$ca/api-keys.txt" --role auditor --name audit \
    --label compose > "$ca/auditor.apikey"
for f in "$ca"/*; do
    case "$(basename "$f")" in
        ca.key | ca.crt) ;;
        *) cp -p "$f" "$tls/" ;;
    esac
done
# Written last: its presence says the set is complete.
cp -p "$ca/ca.crt" "$tls/ca.crt"
echo "certificates made in $tls"
