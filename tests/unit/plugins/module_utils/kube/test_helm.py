"""helm.py without a cluster or helm: which commands are repeated, the budget, the EKS token."""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube import helm
from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.retries import RetryStats

from .test_retries import Clock


def test_helm_read_only_commands_retried_on_transient_errors():
    outcomes = [(1, "", "Error: Kubernetes cluster unreachable: Get \"https://127.0.0.1:1/version\": dial tcp: "
                 "connect: connection refused"), (0, "[]", "")]
    seen = []

    def run_(args):
        seen.append(args)
        return outcomes[min(len(seen) - 1, 1)]

    c, stats = Clock(), RetryStats()
    rc, out, dummy = helm.helm_with_retries(run_, ["list", "-n", "x"], stats=stats, sleep=c.sleep, clock=c.clock,
                                            rng=lambda: 0.5)
    assert rc == 0 and len(seen) == 2 and stats.by_reason == {"helm_transient": 1}


def test_helm_writes_and_real_errors_run_once():
    seen = []

    def run_(args):
        seen.append(args)
        return 1, "", "Error: connection refused"

    helm.helm_with_retries(run_, ["upgrade", "--install", "r", "c"])
    assert len(seen) == 1
    seen[:] = []

    def not_found(args):
        seen.append(args)
        return 1, "", "Error: path \"/nope\" not found"

    helm.helm_with_retries(not_found, ["show", "chart", "/nope"])
    assert len(seen) == 1


def test_helm_budget_spent_says_so():
    c = Clock()
    rc, dummy, err = helm.helm_with_retries(lambda a: (1, "", "dial tcp: connect: connection refused"), ["status", "r"],
                                            budget=3.0, sleep=c.sleep, clock=c.clock, rng=lambda: 1.0)
    assert rc == 1 and "retry budget 3s spent" in err and c.now <= 3.0
