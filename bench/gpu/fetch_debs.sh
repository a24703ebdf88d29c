#!/usr/bin/env bash
# bench/gpu/fetch_debs.sh: downloads (on a machine with network and apt) the Debian
# packages that bench/gpu/run.sh unpacks on the GPU machine, which has neither cJSON,
# Criterion nor network. They land in the git-ignored folder .deb/ at the repository
# root; pass it along with the working tree (carry ".deb").
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .deb
cd .deb
# cJSON and Criterion, plus every runtime library libcriterion3 pulls in
# (apt-cache depends libcriterion3 libgit2-1.5 libnanomsg5).
apt-get download \
  libcjson1 libcjson-dev \
  libcriterion3 libcriterion-dev libboxfort-dev \
  libffi8 libgit2-1.5 libnanomsg5 libhttp-parser2.9 \
  libmbedcrypto7 libmbedtls14 libmbedx509-1 libssh2-1 \
  libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libkeyutils1 libcom-err2 \
  libpcre2-8-0
ls -1 "$PWD"
