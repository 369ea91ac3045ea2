#!/usr/bin/env bash
# Test code, run as root inside a lab guest of the "db" flavour (tests/lab/README.md): captures the
# real outputs the unit tests of plugins/module_utils/_db read (tests/unit/fixtures/db, see its README).
#
#   capture_db_fixtures.sh COLLECTION_ROOT OUTDIR FIXED_WORK_MEM
#
# COLLECTION_ROOT holds ansible_collections/dbfleet/memory/plugins/module_utils/_db (the product's
# own queries are printed from it, so the fixtures are the answers to exactly those); FIXED_WORK_MEM
# is the work_mem the lab proof's calculator proposed (test_db_sizing.py prints it). It restarts both
# servers several times and leaves them as installed.
set -u
ROOT=$1; O=$2; FIXED=$3; mkdir -p "$O"; cd /
# Every client call as the product makes it: C locale, bounded in time.
W=(env LC_ALL=C LANG=C timeout --kill-after=5 20)
Q=$(python3 -c "
import sys; sys.path.insert(0, '$ROOT')
from ansible_collections.dbfleet.memory.plugins.module_utils._db import postgresql, mysql
print(postgresql.SETTINGS_QUERY)")
VQ=$(python3 -c "
import sys; sys.path.insert(0, '$ROOT')
from ansible_collections.dbfleet.memory.plugins.module_utils._db import mysql
print(mysql.VARIABLES_SQL + '; ' + mysql.STATUS_SQL)")
pgset() { "${W[@]}" runuser -u postgres -- psql -X -w -A -t -q -v ON_ERROR_STOP=1 -d template1 -h /var/run/postgresql -p 5432 -c "$Q"; }
mycli() { "${W[@]}" mariadb -N -B --connect-timeout=5 --protocol=socket -e "$VQ"; }
systemctl start postgresql@15-main mariadb; sleep 2
runuser -u postgres -- psql -XAtq -c "ALTER SYSTEM RESET ALL"; systemctl restart postgresql@15-main; sleep 2
pgset > "$O"/pg15-settings-installed.txt
runuser -u postgres -- psql -XAt -F '|' -c "SELECT name, setting, coalesce(unit, '') FROM pg_settings ORDER BY name" > "$O"/pg15-pg_settings-all.txt
pg_lsclusters --json > "$O"/pg_lsclusters-running.json
# the lab proof's configuration (test_db_sizing.py PROOF_PG), then its fix by a reload
for kv in "max_connections=30" "work_mem=32MB" "maintenance_work_mem=32MB" "autovacuum_max_workers=2" "max_worker_processes=4" "max_parallel_workers=2" "max_wal_senders=2" "jit=off"; do
  runuser -u postgres -- psql -XAtq -c "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'"; done
systemctl restart postgresql@15-main; sleep 2
pgset > "$O"/pg15-settings-30conn-workmem32MB.txt
runuser -u postgres -- psql -XAtq -c "ALTER SYSTEM SET work_mem = '$FIXED'"; runuser -u postgres -- psql -XAtq -c "SELECT pg_reload_conf()"; sleep 1
pgset > "$O"/pg15-settings-30conn-workmem"$FIXED".txt
runuser -u postgres -- psql -XAtq -c "ALTER SYSTEM RESET ALL"
runuser -u postgres -- psql -XAtq -c "ALTER SYSTEM SET work_mem = '16MB'"; runuser -u postgres -- psql -XAtq -c "ALTER SYSTEM SET shared_buffers = '64MB'"
systemctl restart postgresql@15-main; sleep 2
pgset > "$O"/pg15-settings-workmem16MB-sb64MB.txt
runuser -u postgres -- psql -XAtq -c "ALTER SYSTEM RESET ALL"; systemctl restart postgresql@15-main; sleep 2
# failures
"${W[@]}" psql -X -w -A -t -q -d template1 -h /var/run/postgresql -p 5432 -c "SELECT 1" > "$O"/fail-psql-as-root.out 2> "$O"/fail-psql-as-root.err; echo $? > "$O"/fail-psql-as-root.rc
"${W[@]}" runuser -u postgres -- psql -X -w -A -t -q -d template1 -h /var/run/postgresql -p 5499 -c "SELECT 1" > "$O"/fail-psql-down.out 2> "$O"/fail-psql-down.err; echo $? > "$O"/fail-psql-down.rc
"${W[@]}" runuser -u postgres -- psqlx -c "SELECT 1" > "$O"/fail-no-client.out 2> "$O"/fail-no-client.err; echo $? > "$O"/fail-no-client.rc
"${W[@]}" runuser -u nosuchuser -- psql -c "SELECT 1" > "$O"/fail-runuser-no-user.out 2> "$O"/fail-runuser-no-user.err; echo $? > "$O"/fail-runuser-no-user.rc
"${W[@]}" runuser -u postgres -- sleep 30 > /dev/null 2>&1; echo $? > "$O"/timeout-sleep.rc
env LC_ALL=C LANG=C timeout --kill-after=1 1 runuser -u postgres -- sleep 30 > "$O"/fail-timeout.out 2> "$O"/fail-timeout.err; echo $? > "$O"/fail-timeout.rc
systemctl stop postgresql@15-main
pg_lsclusters --json > "$O"/pg_lsclusters-down.json
for n in $(python3 -c "
import sys; sys.path.insert(0, '$ROOT')
from ansible_collections.dbfleet.memory.plugins.module_utils._db import postgresql
print(' '.join(postgresql.SETTINGS))"); do
  echo "== $n"; "${W[@]}" runuser -u postgres -- /usr/lib/postgresql/15/bin/postgres -C "$n" -D /etc/postgresql/15/main 2>&1; echo "rc=$?"; done > "$O"/pg15-postgres-C-installed.txt
"${W[@]}" runuser -u postgres -- /usr/lib/postgresql/15/bin/postgres -C no_such_setting -D /etc/postgresql/15/main > "$O"/fail-postgres-C-unknown.out 2> "$O"/fail-postgres-C-unknown.err; echo $? > "$O"/fail-postgres-C-unknown.rc
systemctl start postgresql@15-main
# MariaDB
rm -f /etc/mysql/mariadb.conf.d/95-*.cnf; systemctl restart mariadb; sleep 2
mycli > "$O"/mariadb1011-variables-status-installed.txt
# the lab proof's configuration (test_db_sizing.py PROOF_MY)
printf "[mariadbd]\nmax_connections = 30\nsort_buffer_size = 32M\njoin_buffer_size = 16M\njoin_buffer_space_limit = 16M\nkey_buffer_size = 16M\naria_pagecache_buffer_size = 16M\ntmp_table_size = 4M\nmax_heap_table_size = 4M\n" > /etc/mysql/mariadb.conf.d/95-capture.cnf
systemctl restart mariadb; sleep 2
mycli > "$O"/mariadb1011-variables-status-30conn-sort32M-join16M.txt
"${W[@]}" my_print_defaults --mysqld > "$O"/mariadb1011-my_print_defaults-30conn.txt
printf "[mariadbd]\nperformance_schema = ON\n" > /etc/mysql/mariadb.conf.d/95-capture.cnf
systemctl restart mariadb; sleep 2
mycli > "$O"/mariadb1011-variables-status-performance_schema.txt
"${W[@]}" mariadb -N -B --connect-timeout=5 --protocol=socket -e "SHOW ENGINE PERFORMANCE_SCHEMA STATUS" > "$O"/mariadb1011-performance_schema-status.txt
rm -f /etc/mysql/mariadb.conf.d/95-capture.cnf; systemctl restart mariadb; sleep 2
"${W[@]}" my_print_defaults --mysqld > "$O"/mariadb1011-my_print_defaults-installed.txt
"${W[@]}" /usr/sbin/mariadbd --version > "$O"/mariadbd-version.txt 2>&1
"${W[@]}" runuser -u nobody -- mariadb -N -B --connect-timeout=5 --protocol=socket -e "SELECT 1" > "$O"/fail-mariadb-no-auth.out 2> "$O"/fail-mariadb-no-auth.err; echo $? > "$O"/fail-mariadb-no-auth.rc
"${W[@]}" mariadb -N -B --connect-timeout=5 --protocol=socket --socket=/run/mysqld/none.sock -e "SELECT 1" > "$O"/fail-mariadb-down.out 2> "$O"/fail-mariadb-down.err; echo $? > "$O"/fail-mariadb-down.rc
"${W[@]}" redis-cli -h 127.0.0.1 -p 6379 --no-auth-warning INFO memory > "$O"/fail-redis-cli-missing.out 2> "$O"/fail-redis-cli-missing.err; echo $? > "$O"/fail-redis-cli-missing.rc
# /proc of the running servers, for the fake trees
pm=$(head -1 /var/lib/postgresql/15/main/postmaster.pid)
runuser -u postgres -- psql -XAtq -c "SELECT pg_sleep(20)" >/dev/null 2>&1 &
sleep 2
be=$(pgrep -f "postgres: 15/main: postgres postgres \[local\] SELECT" | head -1)
md=$(pgrep -x mariadbd)
mapfile -t children < <(pgrep -P "$pm" | head -3)
for p in "$pm" "$be" "$md" "${children[@]}"; do
  mkdir -p "$O/proc/$p"
  cp "/proc/$p/status" "/proc/$p/smaps" "/proc/$p/maps" "$O/proc/$p/" 2>/dev/null
  cat "/proc/$p/cmdline" > "$O/proc/$p/cmdline"
done
echo "$pm $be $md" > "$O"/proc/pids.txt
grep -E "Committed_AS|CommitLimit|MemTotal" /proc/meminfo > "$O"/proc/meminfo-at-capture.txt
cp /var/lib/postgresql/15/main/postmaster.pid "$O"/postmaster.pid
wait
