#!/usr/bin/env python3
"""A local Kubernetes cluster from real upstream binaries, with simulated EKS GPU nodes.

Real: etcd, kube-apiserver, kube-controller-manager, kube-scheduler (v1.36.3), kwok's
controller (makes pods on fake nodes Running), Karpenter's KWOK provider, helm, NVIDIA's chart.
Simulated: the nodes (kwok fakes, no kubelet) and, through ``gpu-plugin-emulator``,
the device plugin + GFD effect on them.

Library::

    from localcluster import LocalCluster
    with LocalCluster(workdir="/tmp/lc") as c:      # up() ... down()
        c.add_gpu_node("gpu-1", "g4dn.xlarge")
        c.kubectl("get", "nodes")

CLI::

    python tests/cluster/localcluster.py up     [--name N] [--workdir DIR]   # prints KUBECONFIG
    python tests/cluster/localcluster.py status [--name N] [--workdir DIR]
    python tests/cluster/localcluster.py down   [--name N] [--workdir DIR]
    python tests/cluster/localcluster.py add-node NAME INSTANCE_TYPE [--zone Z]
    python tests/cluster/localcluster.py karpenter | emulator

Binaries come from ``$GPU_SLICING_BIN`` (default ``~/.cache/gpu-slicing-eks/bin``, filled by
``tests/cluster/build.sh``), chart and CRDs from ``$GPU_SLICING_ARTIFACTS``.
Everything a cluster writes lives under its workdir; ``down`` removes it.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "gpu_instance_types.yaml"
DEFAULT_CACHE = Path(os.environ.get("GPU_SLICING_CACHE", Path.home() / ".cache" / "gpu-slicing-eks"))
DEFAULT_NAME = "gpu-slicing"
DEFAULT_WORKDIR = Path(os.environ.get("GPU_SLICING_WORKDIR", Path(tempfile.gettempdir()) / "gpu-slicing-eks-cluster"))
KUBE_VERSION = "v1.36.3"
KARPENTER_NAMESPACE = "karpenter"

SIMULATED_LABEL = "gpu-slicing.eks/simulated"
GPU_TAINT = {"key": "nvidia.com/gpu", "effect": "NoSchedule"}


class ClusterError(RuntimeError):
    pass


def bin_dir() -> Path:
    return Path(os.environ.get("GPU_SLICING_BIN", DEFAULT_CACHE / "bin"))


def artifacts_dir() -> Path:
    return Path(os.environ.get("GPU_SLICING_ARTIFACTS", DEFAULT_CACHE / "artifacts"))


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1, chosen by the kernel (random, unlike kwokctl's
    own picker, which counts down from 32767, so clusters started at the same time collide)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------- instance types


def load_instance_types(path: Path = FIXTURE) -> dict:
    """The fixture: {region, zones, instance_types: {name: {vcpu, memory_mib, pods, gpu{...}, price}}}."""
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def eks_reserved(vcpu: int, pods: int) -> tuple[int, int]:
    """kube-reserved CPU (millicores) and memory (MiB, incl. 100Mi hard eviction) as EKS AMIs set them."""
    cpu_m = 0.0
    for core in range(1, vcpu + 1):
        cpu_m += 60 if core == 1 else 10 if core == 2 else 5 if core <= 4 else 2.5
    mem_mib = 255 + 11 * pods + 100
    return int(cpu_m), mem_mib


def gpu_labels(itype: str, spec: dict, region: str, zone: str) -> dict[str, str]:
    gpu = spec["gpu"]
    family, _, size = itype.partition(".")
    return {
        "node.kubernetes.io/instance-type": itype,
        "beta.kubernetes.io/instance-type": itype,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "karpenter.k8s.aws/instance-family": family,
        "karpenter.k8s.aws/instance-size": size,
        "karpenter.k8s.aws/instance-cpu": str(spec["vcpu"]),
        "karpenter.k8s.aws/instance-memory": str(spec["memory_mib"]),
        "karpenter.k8s.aws/instance-gpu-name": gpu["name"],
        "karpenter.k8s.aws/instance-gpu-manufacturer": gpu["manufacturer"],
        "karpenter.k8s.aws/instance-gpu-count": str(gpu["count"]),
        "karpenter.k8s.aws/instance-gpu-memory": str(gpu["memory_mib"]),
        "nvidia.com/gpu.present": "true",
        SIMULATED_LABEL: "true",
    }


def gpu_node_manifest(name: str, itype: str, zone: str | None = None, labels: dict | None = None,
                      taints: list | None = None, fixture: dict | None = None) -> dict:
    """A Node object that looks like a fresh EKS GPU node (no nvidia.com/gpu until a plugin runs)."""
    fx = fixture or load_instance_types()
    try:
        spec = fx["instance_types"][itype]
    except KeyError:
        raise ClusterError(f"unknown instance type {itype!r}; known: {sorted(fx['instance_types'])}") from None
    zone = zone or fx["zones"][0]
    cpu_res, mem_res = eks_reserved(spec["vcpu"], spec["pods"])
    capacity = {
        "cpu": str(spec["vcpu"]),
        "memory": f"{spec['memory_mib']}Mi",
        "pods": str(spec["pods"]),
        "ephemeral-storage": "80Gi",
    }
    allocatable = {
        "cpu": f"{spec['vcpu'] * 1000 - cpu_res}m",
        "memory": f"{spec['memory_mib'] - mem_res}Mi",
        "pods": str(spec["pods"]),
        "ephemeral-storage": "76Gi",
    }
    all_labels = {"kubernetes.io/hostname": name, **gpu_labels(itype, spec, fx["region"], zone), **(labels or {})}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": all_labels,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": [dict(t) for t in (taints if taints is not None else [GPU_TAINT])]},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": KUBE_VERSION,
                "osImage": "Amazon Linux 2023 (simulated)",
                "containerRuntimeVersion": "containerd://simulated",
            },
        },
    }


def karpenter_instance_types(fixture: dict | None = None) -> list[dict]:
    """The Karpenter KWOK provider's INSTANCE_TYPES_FILE_PATH content.

    nvidia.com/gpu is the physical GPU count (what Karpenter believes without a NodeOverlay).
    The AWS GPU labels ride on the offerings' requirements: the KWOK provider copies every
    single-valued offering requirement onto the nodes it creates.
    """
    fx = fixture or load_instance_types()
    out = []
    for itype, spec in fx["instance_types"].items():
        labels = gpu_labels(itype, spec, fx["region"], "")
        extra = {k: v for k, v in labels.items() if k.startswith("karpenter.k8s.aws/instance-gpu")
                 or k in ("topology.kubernetes.io/region", "nvidia.com/gpu.present", SIMULATED_LABEL)}
        offerings = []
        for zone in fx["zones"]:
            reqs = [
                {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [zone]},
            ]
            reqs += [{"key": k, "operator": "In", "values": [v]} for k, v in sorted(extra.items())]
            offerings.append({"Price": spec["price"], "Available": True, "Requirements": reqs})
        out.append({
            "name": itype,
            "architecture": "amd64",
            "operatingSystems": ["linux"],
            "resources": {
                "cpu": str(spec["vcpu"]),
                "memory": f"{spec['memory_mib']}Mi",
                "pods": str(spec["pods"]),
                "ephemeral-storage": "80Gi",
                "nvidia.com/gpu": str(spec["gpu"]["count"]),
            },
            "offerings": offerings,
        })
    return out


# --------------------------------------------------------------------------- processes


def _stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group led by pid (we start ours with start_new_session), then SIGKILL."""
    try:
        group = os.getpgid(pid) == pid
    except ProcessLookupError:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            if group:
                os.killpg(pid, sig)
            else:
                os.kill(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 3)
        while time.monotonic() < deadline:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    return
            except ChildProcessError:  # not our child: poll for existence
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
            time.sleep(0.1)


# --------------------------------------------------------------------------- the cluster


class LocalCluster:
    def __init__(self, name: str = DEFAULT_NAME, workdir: str | Path | None = None,
                 bin: str | Path | None = None, artifacts: str | Path | None = None,
                 apiserver_args: dict | None = None):
        self.name = name
        # Extra kube-apiserver flags ({flag: value}), e.g. to leave out an API an older release lacks.
        self.apiserver_args = dict(apiserver_args or {})
        self.workdir = Path(workdir or DEFAULT_WORKDIR).resolve()
        self.bin = Path(bin or bin_dir()).resolve()
        self.artifacts = Path(artifacts or artifacts_dir()).resolve()
        self.kwok_workdir = self.workdir / "kwok"
        self.kubeconfig = self.workdir / "kubeconfig"
        self.logs = self.workdir / "logs"
        self.state_file = self.workdir / "state.json"
        self._atexit = False

    # ---- environment
    def env(self, **extra) -> dict:
        env = dict(os.environ)
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["KWOK_WORKDIR"] = str(self.kwok_workdir)
        env["HELM_CACHE_HOME"] = str(self.workdir / "helm" / "cache")
        env["HELM_CONFIG_HOME"] = str(self.workdir / "helm" / "config")
        env["HELM_DATA_HOME"] = str(self.workdir / "helm" / "data")
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def _state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}

    def _save_state(self, state: dict) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def run(self, *cmd, input: str | None = None, check: bool = True, timeout: float = 120,
            env: dict | None = None) -> subprocess.CompletedProcess:
        p = subprocess.run([str(c) for c in cmd], input=input, capture_output=True, text=True,
                           env=env or self.env(), timeout=timeout)
        if check and p.returncode != 0:
            raise ClusterError(f"{' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stderr or p.stdout}")
        return p

    def kubectl(self, *args, input: str | None = None, check: bool = True, timeout: float = 120):
        return self.run(self.bin / "kubectl", "--kubeconfig", self.kubeconfig, *args,
                        input=input, check=check, timeout=timeout)

    def kubectl_json(self, *args) -> dict:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)

    def helm(self, *args, check: bool = True, timeout: float = 300):
        return self.run(self.bin / "helm", "--kubeconfig", self.kubeconfig, *args, check=check, timeout=timeout)

    def apply(self, obj, server_side: bool = False) -> str:
        """kubectl apply of a dict, a list of dicts, or YAML text."""
        if isinstance(obj, (dict, list)):
            docs = obj if isinstance(obj, list) else [obj]
            text = yaml.safe_dump_all(docs)
        else:
            text = obj
        args = ["apply", "-f", "-"] + (["--server-side", "--force-conflicts"] if server_side else [])
        return self.kubectl(*args, input=text).stdout

    # ---- lifecycle
    def is_up(self) -> bool:
        if not self.kubeconfig.exists():
            return False
        p = self.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
        return p.returncode == 0 and p.stdout.strip() == "ok"

    def _check_binaries(self, names) -> None:
        missing = [n for n in names if not (self.bin / n).is_file()]
        if missing:
            raise ClusterError(f"missing binaries in {self.bin}: {missing}; run tests/cluster/build.sh")

    def up(self, timeout: float = 180) -> "LocalCluster":
        """Start the cluster (idempotent: an existing healthy cluster in this workdir is reused)."""
        if self.is_up():
            return self
        self._check_binaries(["kwokctl", "kwok", "etcd", "kube-apiserver", "kube-controller-manager",
                              "kube-scheduler", "kubectl"])
        if self.kwok_workdir.exists():  # leftovers of a dead cluster
            self.down()
        self.logs.mkdir(parents=True, exist_ok=True)
        self.kwok_workdir.mkdir(parents=True, exist_ok=True)
        self._register_atexit()
        # Bind everything kwokctl starts to loopback.
        config = self.workdir / "kwokctl.yaml"
        # Every port chosen here: kwokctl's picker is not safe against clusters created concurrently.
        port, etcd, etcd_peer, kwok_port, kcm, sched = free_ports(6)
        config.write_text(yaml.safe_dump({
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokctlConfiguration",
            "options": {
                "bindAddress": "127.0.0.1",
                "kubeApiserverPort": port,
                "etcdPort": etcd,
                "etcdPeerPort": etcd_peer,
                "kwokControllerPort": kwok_port,
                "kubeControllerManagerPort": kcm,
                "kubeSchedulerPort": sched,
            },
        }))
        b = self.bin
        cmd = [
            b / "kwokctl", "-c", config, "create", "cluster", "--name", self.name,
            "--runtime", "binary",
            "--kubeconfig", self.kubeconfig,
            "--kube-apiserver-binary", b / "kube-apiserver",
            "--kube-controller-manager-binary", b / "kube-controller-manager",
            "--kube-scheduler-binary", b / "kube-scheduler",
            "--etcd-binary", b / "etcd",
            "--kwok-controller-binary", b / "kwok",
            "--extra-args", "kube-apiserver=advertise-address=127.0.0.1",
            "--wait", f"{int(timeout)}s",
            "--timeout", f"{int(timeout)}s",
        ]
        for flag, value in sorted(self.apiserver_args.items()):
            cmd += ["--extra-args", f"kube-apiserver={flag}={value}"]
        self._save_state({"name": self.name, "apiserver_port": port, "processes": {}})
        try:
            self._create(cmd, timeout)
            self.add_system_node()
        except BaseException:
            self.down()
            raise
        return self

    def add_system_node(self, name: str = "system-0") -> dict:
        """A plain CPU node, as every EKS cluster has a system node group.

        Without it, pods that are not GPU workloads have nowhere to go: NFD's master and its
        pre-delete prune hook (pulled in with GFD by NVIDIA's chart) stay Pending, and
        `helm uninstall` then waits on the hook until it times out.
        """
        fx = load_instance_types()
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/arch": "amd64",
                    "kubernetes.io/os": "linux",
                    "node.kubernetes.io/instance-type": "m5.large",
                    "topology.kubernetes.io/region": fx["region"],
                    "topology.kubernetes.io/zone": fx["zones"][0],
                    "eks.amazonaws.com/nodegroup": "system",
                    SIMULATED_LABEL: "true",
                },
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "status": {
                "capacity": {"cpu": "2", "memory": "7851Mi", "pods": "29"},
                "allocatable": {"cpu": "1930m", "memory": "7200Mi", "pods": "29"},
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux", "kubeletVersion": KUBE_VERSION,
                             "osImage": "Amazon Linux 2023 (simulated)",
                             "containerRuntimeVersion": "containerd://simulated"},
            },
        }
        self.kubectl("create", "-f", "-", input=json.dumps(node))
        self.wait_for(lambda: self._node_ready(name), 60, f"node {name} Ready")
        return self.kubectl_json("get", "node", name)

    def _create(self, cmd: list, timeout: float) -> None:
        t0 = time.monotonic()
        with open(self.logs / "kwokctl-create.log", "w") as log:
            p = subprocess.run([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT,
                               env=self.env(), timeout=timeout + 60)
        if p.returncode != 0:
            tail = (self.logs / "kwokctl-create.log").read_text()[-3000:]
            raise ClusterError(f"kwokctl create cluster failed ({p.returncode}):\n{tail}")
        self._wait(lambda: self.is_up(), timeout, "apiserver /readyz")
        # the default ServiceAccount appears once kube-controller-manager runs
        self._wait(lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
                   timeout, "default ServiceAccount (kube-controller-manager)")
        state = self._state()
        state["started_seconds"] = round(time.monotonic() - t0, 1)
        self._save_state(state)

    def down(self) -> None:
        """Stop every process of this cluster and remove its files (safe to call twice)."""
        state = self._state()
        for _, info in list(state.get("processes", {}).items()):
            _stop_pid(info["pid"])
        if (self.kwok_workdir / "clusters" / self.name).exists() and (self.bin / "kwokctl").exists():
            with open(os.devnull, "w") as devnull:
                subprocess.run([str(self.bin / "kwokctl"), "delete", "cluster", "--name", self.name,
                                "--kubeconfig", str(self.kubeconfig)],
                               env=self.env(), stdout=devnull, stderr=devnull, timeout=120, check=False)
        # Whatever kwokctl left running (a failed create, a failed delete): its pid files.
        for pid_file in (self.kwok_workdir / "clusters" / self.name / "pids").glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pid_file.read_text().strip())
                if str(self.workdir) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
                    _stop_pid(pid)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def status(self) -> dict:
        state = self._state()
        procs = {}
        for name, info in state.get("processes", {}).items():
            try:
                os.kill(info["pid"], 0)
                procs[name] = {"pid": info["pid"], "running": True, "log": info.get("log")}
            except ProcessLookupError:
                procs[name] = {"pid": info["pid"], "running": False, "log": info.get("log")}
        return {"name": self.name, "workdir": str(self.workdir), "kubeconfig": str(self.kubeconfig),
                "up": self.is_up(), "apiserver_port": state.get("apiserver_port"), "processes": procs}

    def _register_atexit(self) -> None:
        if not self._atexit:
            atexit.register(self._atexit_down)
            self._atexit = True

    def _atexit_down(self) -> None:
        if not self._keep:
            self.down()

    _keep = False

    def keep_running(self) -> None:
        """Do not stop the cluster at interpreter exit (the CLI's `up`)."""
        self._keep = True

    def __enter__(self):
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc):
        self.down()

    @staticmethod
    def _wait(pred, timeout: float, what: str, interval: float = 0.5):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(interval)
        raise ClusterError(f"timed out after {timeout}s waiting for {what}")

    def wait_for(self, pred, timeout: float = 60, what: str = "condition", interval: float = 0.5):
        self._wait(pred, timeout, what, interval)

    # ---- extra processes
    def start_process(self, name: str, cmd: list, env: dict | None = None) -> int:
        """Start a long-running helper in its own process group; it is stopped by down()."""
        state = self._state()
        old = state.get("processes", {}).get(name)
        if old:
            _stop_pid(old["pid"])
        log_path = self.logs / f"{name}.log"
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            p = subprocess.Popen([str(c) for c in cmd], stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env or self.env(), start_new_session=True,
                                 cwd=self.workdir)
        state.setdefault("processes", {})[name] = {"pid": p.pid, "log": str(log_path), "cmd": [str(c) for c in cmd]}
        self._save_state(state)
        self._register_atexit()
        time.sleep(0.5)
        if p.poll() is not None:
            raise ClusterError(f"{name} exited at once ({p.returncode}):\n{log_path.read_text()[-3000:]}")
        return p.pid

    def stop_process(self, name: str) -> None:
        state = self._state()
        info = state.get("processes", {}).pop(name, None)
        if info:
            _stop_pid(info["pid"])
            self._save_state(state)

    @contextlib.contextmanager
    def paused_process(self, name: str):
        """SIGSTOP a helper started by start_process (only its own pid, not its children) for the
        body of the with-block; it is always continued."""
        pid = self._state()["processes"][name]["pid"]
        os.kill(pid, signal.SIGSTOP)
        try:
            yield pid
        finally:
            os.kill(pid, signal.SIGCONT)

    def start_emulator(self, *extra_args) -> int:
        self._check_binaries(["gpu-plugin-emulator"])
        return self.start_process("gpu-plugin-emulator",
                                  [self.bin / "gpu-plugin-emulator", "--kubeconfig", self.kubeconfig, *extra_args])

    def start_real_plugin(self, *extra_args) -> int:
        """NVIDIA's own device plugin, GFD and config-manager on the simulated GPU nodes.

        Runs kubelet-device-emulator (go/nvidia-real): it runs the chart's pods bound to simulated
        GPU nodes as processes (one private mount+PID namespace per pod) over the emulated NVML,
        and stands in for kubelet's device manager and NFD's labelling. Stopped by down().
        """
        self._check_binaries(["kubelet-device-emulator", "pod-sandbox", "nvidia-device-plugin",
                              "gpu-feature-discovery", "config-manager"])
        nvml = self.bin.parent / "nvml"
        if not (nvml / "libnvidia-ml.so.1").exists():
            raise ClusterError(f"{nvml}/libnvidia-ml.so.1 missing: run tests/cluster/build.sh nvidia-real")
        return self.start_process("kubelet-device-emulator", [
            self.bin / "kubelet-device-emulator", "--kubeconfig", self.kubeconfig, "--workdir", self.workdir / "nodes",
            "--bin", self.bin, "--nvml-lib", nvml, "--fixture", FIXTURE, *extra_args])

    def chart_process_memory(self, node: str) -> list[dict]:
        """Memory of every process start_real_plugin() runs for the node's chart pods, from
        /proc/<pid>/smaps_rollup, in KiB: ``rss`` (each page in full: the binaries' code that every
        node maps from the same files counts once per process), ``pss`` (each page divided by the
        processes mapping it: the node's fair share), ``uss`` (pages only this process maps) and
        ``anon``. The pod sandboxes are found by their command line (it names the node's
        directory), NVIDIA's binaries by their environment (the node's nvml.json)."""
        marker = f"{self.workdir}/nodes/{node}/".encode()
        fields = {"Rss": "rss", "Pss": "pss", "Private_Clean": "uss", "Private_Dirty": "uss", "Anonymous": "anon"}
        procs = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmdline = (proc / "cmdline").read_bytes()
                if marker not in cmdline and marker not in (proc / "environ").read_bytes():
                    continue
                rollup = (proc / "smaps_rollup").read_text()
            except OSError:  # gone meanwhile
                continue
            argv0 = cmdline.split(b"\0")[0].decode(errors="replace")
            mem = {"pid": int(proc.name), "name": Path(argv0).name, "rss": 0, "pss": 0, "uss": 0, "anon": 0}
            for line in rollup.splitlines():
                key, dummy, rest = line.partition(":")
                if key in fields:
                    mem[fields[key]] += int(rest.split()[0])
            procs.append(mem)
        return sorted(procs, key=lambda p: (p["name"], p["pid"]))

    def apply_karpenter_crds(self) -> None:
        crds = sorted((self.artifacts / "karpenter-crds").glob("*.yaml"))
        if not crds:
            raise ClusterError(f"no CRDs in {self.artifacts / 'karpenter-crds'}; run tests/cluster/build.sh")
        args = ["apply", "--server-side", "--force-conflicts"]
        for f in crds:
            args += ["-f", f]
        self.kubectl(*args)
        self.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                     *[f"crd/{yaml.safe_load(f.read_text())['metadata']['name']}" for f in crds])

    def start_karpenter(self, feature_gates: str = "NodeOverlay=true", extra_env: dict | None = None) -> int:
        """Karpenter's KWOK provider as a plain process, with the GPU instance types of the fixture."""
        self._check_binaries(["karpenter-kwok-eks"])
        self.apply_karpenter_crds()
        self.apply([
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": KARPENTER_NAMESPACE}},
            {"apiVersion": "karpenter.kwok.sh/v1alpha1", "kind": "KWOKNodeClass", "metadata": {"name": "default"}},
        ])
        it_file = self.workdir / "karpenter-instance-types.json"
        it_file.write_text(json.dumps(karpenter_instance_types(), indent=2))
        env = self.env(
            SYSTEM_NAMESPACE=KARPENTER_NAMESPACE,
            INSTANCE_TYPES_FILE_PATH=it_file,
            FEATURE_GATES=feature_gates,
            DISABLE_LEADER_ELECTION="true",
            METRICS_PORT=free_port(),
            HEALTH_PROBE_PORT=free_port(),
            KUBE_CLIENT_QPS=50,
            KUBE_CLIENT_BURST=100,
            BATCH_MAX_DURATION="2s",
            BATCH_IDLE_DURATION="500ms",
            LOG_LEVEL="info",
            **(extra_env or {}),
        )
        return self.start_process("karpenter", [self.bin / "karpenter-kwok-eks", "--disable-leader-election"], env=env)

    # ---- nodes
    def add_gpu_node(self, name: str, instance_type: str, zone: str | None = None,
                     labels: dict | None = None, taints: list | None = None) -> dict:
        """Create a simulated EKS GPU node (fresh: no nvidia.com/gpu until the plugin emulator runs)."""
        node = gpu_node_manifest(name, instance_type, zone=zone, labels=labels, taints=taints)
        self.kubectl("create", "-f", "-", input=json.dumps(node))
        self.wait_for(lambda: self._node_ready(name), 60, f"node {name} Ready")
        return self.kubectl_json("get", "node", name)

    def create_namespace(self, name: str, timeout: float = 60) -> None:
        """Create a namespace and wait for its default ServiceAccount: pods created before the
        ServiceAccount controller got to it are refused ("serviceaccount default not found")."""
        self.kubectl("create", "namespace", name, check=False)
        self.wait_for(lambda: self.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode == 0,
                      timeout, f"ServiceAccount {name}/default")

    def _node_ready(self, name: str) -> bool:
        p = self.kubectl("get", "node", name, "-o",
                         "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False)
        return p.returncode == 0 and p.stdout.strip() == "True"

    def delete_node(self, name: str) -> None:
        self.kubectl("delete", "node", name, "--ignore-not-found", "--wait=false")

    def remove_karpenter_nodes(self, selector: str, timeout: float = 90) -> list[str]:
        """Delete the NodeClaims (and so the Nodes) matching ``selector`` while Karpenter still runs,
        and wait until both are gone. What is still there after ``timeout`` (a node Karpenter could
        not drain) loses its finalizers and is deleted, so no GPU node outlives its test: a stopped
        Karpenter never lifts its termination finalizer. Returns the names that had to be forced."""
        def left() -> list[str]:
            p = self.kubectl("get", "nodeclaims.karpenter.sh,nodes", "-l", selector, "-o", "name", check=False)
            return p.stdout.split() if p.returncode == 0 else []
        self.kubectl("delete", "nodeclaims.karpenter.sh", "-l", selector, "--ignore-not-found", "--wait=false",
                     check=False)
        deadline = time.monotonic() + timeout
        while left() and time.monotonic() < deadline:
            time.sleep(1)
        forced = left()
        for obj in forced:
            self.kubectl("patch", obj, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
            self.kubectl("delete", obj, "--ignore-not-found", "--wait=false", check=False)
        if forced:
            self.wait_for(lambda: not left(), 30, f"forced removal of {forced}")
        return forced


# --------------------------------------------------------------------------- CLI


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=["up", "down", "status", "add-node", "karpenter", "emulator", "real-plugin",
                                        "kubeconfig"])
    ap.add_argument("args", nargs="*")
    ap.add_argument("--name", default=DEFAULT_NAME)
    ap.add_argument("--workdir", default=str(DEFAULT_WORKDIR))
    ap.add_argument("--zone")
    ap.add_argument("--timeout", type=float, default=180)
    a = ap.parse_args(argv)
    c = LocalCluster(name=a.name, workdir=a.workdir)
    c.keep_running()  # the CLI leaves the cluster up; `down` stops it
    if a.command == "up":
        t0 = time.monotonic()
        c.up(timeout=a.timeout)
        print(f"cluster {a.name} up in {time.monotonic() - t0:.1f}s", file=sys.stderr)
        print(f"export KUBECONFIG={c.kubeconfig}")
    elif a.command == "kubeconfig":
        print(c.kubeconfig)
    elif a.command == "down":
        c.down()
        print(f"cluster {a.name} removed ({c.workdir})", file=sys.stderr)
    elif a.command == "status":
        st = c.status()
        print(json.dumps(st, indent=2))
        return 0 if st["up"] else 1
    elif a.command == "add-node":
        if len(a.args) != 2:
            ap.error("add-node NAME INSTANCE_TYPE")
        c.add_gpu_node(a.args[0], a.args[1], zone=a.zone)
        print(f"node {a.args[0]} ({a.args[1]}) Ready", file=sys.stderr)
    elif a.command == "karpenter":
        print(f"karpenter pid {c.start_karpenter()}, log {c.logs / 'karpenter.log'}", file=sys.stderr)
    elif a.command == "emulator":
        print(f"gpu-plugin-emulator pid {c.start_emulator(*a.args)}, log {c.logs / 'gpu-plugin-emulator.log'}",
              file=sys.stderr)
    elif a.command == "real-plugin":
        print(f"kubelet-device-emulator pid {c.start_real_plugin(*a.args)}, log {c.logs / 'kubelet-device-emulator.log'}",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ClusterError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
