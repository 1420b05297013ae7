# Sourced by the bench scripts (after they set $threads): pin_waits AMPC
# gives every run of the script one OpenMP wait policy, so that no ratio
# compares a run whose threads sleep with one whose threads spin. Unless the
# caller set a policy, the choice ampc makes for a first short run
# (tools/ampc/main.c: OpenMP's default on an idle machine, passive on a busy
# one) is exported, the default as GOMP_SPINCOUNT=300000 (libgomp's own
# default spin); $waits names the policy for the JSON.
pin_waits() {
  if [ -z "${OMP_WAIT_POLICY:-}" ] && [ -z "${GOMP_SPINCOUNT:-}" ]; then
    local p
    p=$("$1" train --data synthetic --model mlp:16-8-3 --synthetic-n 64 --epochs 1 --json --quiet \
      --threads "$threads" | sed -n 's/.*"omp_wait_policy":"\([a-z]*\)".*/\1/p')
    if [ "$p" = passive ]; then export OMP_WAIT_POLICY=passive; else export GOMP_SPINCOUNT=300000; fi
  fi
  if [ -n "${GOMP_SPINCOUNT:-}" ]; then waits="GOMP_SPINCOUNT=$GOMP_SPINCOUNT"; else
    waits="OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
  fi
}
