#!/bin/sh
# The table of a bench.json (tests/bench/bench.sh) as Markdown:
# figure, value, the baseline measured in the same run, and their ratio.
set -eu
jq -r '
def n(d): if . == null then "-" else (. * pow(10; d) | round / pow(10; d) | tostring) end;
def row(a; b; c; d): "| \(a) | \(b) | \(c) | \(d) |";
def bytes: if . < 10240 then "\(.) B" else "\(. / 1024 | n(0)) KiB" end;
"Run \(.date) on \(.machine.cpus) CPUs (\(.machine.kernel)), `\(.command)`.", "",
row("Figure"; "Value"; "Baseline (same run)"; "Ratio"),
"|---|---:|---:|---:|",
(.figures[] |
 if .figure == "throughput" then
   row("Throughput \(.pool), +\(.latency_ms) ms"
        + (if .config != "default" then " (\(.config))" else "" end);
       "\(.runs_per_s | n(0)) runs/s";
       (if .baseline_runs_per_s then "\(.baseline_runs_per_s | n(0)) runs/s"
         else "-" end);
       (.ratio | n(2)) + (if .same_requests == false then " (request mix differs)" else "" end))
 elif .figure == "throughput_prefect" then
   row("Throughput \(.pool) from Prefect, +\(.latency_ms) ms";
       "\(.runs_per_s | n(0)) runs/s";
       "\(.baseline_runs_per_s | n(0)) runs/s (bare libcurl worker)";
       (.ratio | n(2)) + (if .same_requests == false then " (request mix differs)" else "" end))
 elif .figure == "throughput_prefect_history" then
   row("Throughput \(.pool) from Prefect, +0 ms, \(.stored) finished runs stored"; "\(.runs_per_s | n(0)) runs/s";
       "\(.empty_runs_per_s | n(0)) runs/s (empty store)"; (.ratio | n(2)))
 elif .figure == "baseline_connections" then
   row("Baseline \(.pool), " + (if .connections == "reuse-all" then "every connection reused"
        else "fresh connection per non-GET" end); "\(.runs_per_s | n(0)) runs/s"; "-"; "-")
 elif .figure == "cpu" then
   (.instructions_per_run as $i |
    row("CPU per run (cloud-run, ecs, aci; \(.runs) runs)"; "\($i.total) instr";
        "\(.baseline_instructions_per_run) instr (bare libcurl)"; (.ratio | n(2))),
    row("… render / sign / JSON / HTTP"; "\($i.render) / \($i.sign) / \($i.json) / \($i.http)";
        "-"; "-"),
    row("… store / log / other"; "\($i.store) / \($i.log) / \($i.other)"; "-"; "-"))
 elif .figure == "render" then
   row("Render \(.type) (\(.job_bytes) B)"; "\(.us | n(1)) µs (a repeated run, from the pool cache: \(.cached_us | n(1)) µs)";
        "\(.baseline_us | n(1)) µs (JSON parse+write)";
       (.us / .baseline_us | n(2)))
 elif .figure == "sigv4" then
   row("SigV4 signature (ECS RunTask)"; "\(.us | n(1)) µs";
        "\(.baseline_us | n(1)) µs (bare OpenSSL)";
       (.us / .baseline_us | n(2)))
 elif .figure == "memory" then
   row("Peak RSS idle"; "\(.idle_kib) KiB"; "\(.floor_kib) KiB (--version)"; (.idle_ratio | n(2))),
   row("Peak RSS, \(.in_flight) runs in flight";
        "\(.in_flight_kib) KiB (\(.kib_per_run_in_flight | n(2)) KiB/run)";
       "\(.idle_kib) KiB (idle)"; (.in_flight_ratio | n(2))),
   row("Peak RSS, \(.in_store) runs in the store"; "\(.in_store_kib) KiB";
        "\(.idle_kib) KiB (idle)";
       (.in_store_ratio | n(2)))
 elif .figure == "latency" then
   row("Scheduled → submitted p50 / p99, \(.pool) (\(.runs) runs at \(.rate_per_min)/min)";
       "\(.p50_ms) / \(.p99_ms) ms";
       (if .baseline_chain_ms then "\(.baseline_chain_ms | n(1)) ms (request chain)" else "-" end);
       (if .p50_ratio then "\(.p50_ratio | n(1)) / \(.p99_ratio | n(1))" else "-" end))
 elif .figure == "curve_in_flight" then
   row("Curve: \(.in_flight) \(.pool) runs in flight"; "\(.runs_per_s | n(0)) runs/s, \(.peak_rss_kib) KiB (\(.kib_per_run | n(2)) KiB/run)";
       "first point"; "\(.rate_ratio | n(2)) / \(.kib_per_run_ratio | n(2))")
 elif .figure == "watch" then
   row("Status polls of \(.in_flight) \(.pool) runs in flight, \(.seconds) s: requests / tasks polled"; "\(.calls) / \(.tasks) (serve \(.cpu_us_per_task | n(1)) µs of CPU a task)";
       "one request a task"; (.ratio | n(3)))
 elif .figure == "curve_history" then
   row("Curve: throughput of \(.runs) \(.pool) runs with \(.stored) finished runs stored"; "\(.runs_per_s | n(0)) runs/s";
       "\(.empty_runs_per_s | n(0)) runs/s (empty store)"; (.ratio | n(2)))
 elif .figure == "curve_claim" then
   row("Curve: claim of \(.batch) with \(.stored) finished runs stored, p50 / p99"; "\(.p50_us | n(0)) / \(.p99_us | n(0)) µs";
       "first point"; (.p50_ratio | n(2)))
 elif .figure == "curve_claim_limited" then
   row("Curve: claim of \(.batch) with \(.stored) finished runs stored, pool with a limit, p50 / p99"; "\(.p50_us | n(0)) / \(.p99_us | n(0)) µs";
       "\(.unlimited_p50_us | n(0)) µs (no limit, same store)"; (.p50_ratio | n(2)))
 elif .figure == "history" and .store == "postgresql" then
   row("Throughput \(.pool), +0 ms, PostgreSQL, 1 dispatcher, to SUBMITTED, \(.stored) finished runs stored"; "\(.runs_per_s | n(0)) runs/s";
       "\(.empty_runs_per_s | n(0)) runs/s (empty store)"; (.ratio | n(2)))
 elif .figure == "idle_in_flight" and .store == "postgresql" then
   row("Idle `serve` holding \(.in_flight) runs in flight on PostgreSQL, CPU of it and its server sessions over \(.seconds) s, WAL written"; "\(.cpu_ms) ms, \(.wal_bytes | bytes)";
       "\(.empty_cpu_ms) ms, \(.empty_wal_bytes | bytes) (empty store)"; (if .ratio then (.ratio | n(1)) else "-" end))
 elif .figure == "idle_in_flight" then
   row("Idle `serve` holding \(.in_flight) runs in flight, CPU over \(.seconds) s"; "\(.cpu_ms) ms (\(.core_pct) % of a core)";
       "\(.empty_cpu_ms) ms (empty store)"; (if .ratio then (.ratio | n(1)) else "-" end))
 elif .figure == "idle_metrics" then
   row("Idle `serve` with metrics on, \(.stored) finished runs stored, CPU over \(.seconds) s"; "\(.cpu_ms) ms (\(.core_pct) % of a core)";
       "\(.empty_cpu_ms) ms (empty store)"; (if .ratio then (.ratio | n(1)) else "-" end))
 elif .figure == "startup" then
   row("Startup `pushpool --version`"; "\(.version_ms) ms";
        "\(.baseline_ms) ms (bare libcurl program)";
       (.version_ratio | n(1))),
   row("Startup empty `pushpool once`"; "\(.empty_once_ms) ms"; "\(.baseline_ms) ms";
        (.empty_once_ratio | n(1)))
 else empty end)
' "$1"
