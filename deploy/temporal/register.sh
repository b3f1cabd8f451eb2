#!/bin/sh
# One-shot (compose `temporal-admin`, and the k8s Job `batch-exports-temporal-admin`): create the namespace if
# missing and register the search attributes every run and backfill carries (contracts/search_attributes.py).
# Safe to run again: an attribute that is already registered with its type is left alone.
set -eu
namespace="${TEMPORAL_NAMESPACE:-default}"
until temporal operator cluster health >/dev/null 2>&1; do echo "waiting for Temporal at $TEMPORAL_ADDRESS"; sleep 2; done
temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1 \
  || temporal operator namespace create --namespace "$namespace" --retention 7d
attempts=0  # a namespace just created takes a moment to be served everywhere
until temporal operator search-attribute list --namespace "$namespace" >/dev/null 2>&1; do
  attempts=$((attempts + 1))
  [ "$attempts" -lt 60 ] || { echo "namespace $namespace is not served" >&2; exit 1; }
  sleep 1
done
for attribute in BatchExportId=Keyword TeamId=Int DataIntervalStart=Datetime DataIntervalEnd=Datetime \
                 DestinationType=Keyword BackfillId=Keyword BatchExportName=Keyword; do
  name="${attribute%%=*}"
  type="${attribute#*=}"
  if temporal operator search-attribute list --namespace "$namespace" | grep -qw "$name"; then
    echo "search attribute $name is registered"
  else
    temporal operator search-attribute create --namespace "$namespace" --name "$name" --type "$type"
  fi
done
