"""Host names that reach internal services whatever DNS says: cloud metadata, cluster and
local-network names.

Their addresses are blocked by the SSRF guard too, but a name is checked before it is resolved:
at submission it may not resolve where the app runs (``metadata.google.internal`` outside
Google Cloud), and where the delivery runs it may resolve to a host no address list knows.
"""

from __future__ import annotations

__all__ = ["INTERNAL_HOSTS", "INTERNAL_SUFFIXES", "internal_name_reason"]

# Exact names, lower case, without the trailing dot.
INTERNAL_HOSTS: dict[str, str] = {
    "localhost": "this machine",
    "metadata.google.internal": "Google Cloud's metadata server",
    "metadata.goog": "Google Cloud's metadata server",
    "metadata": "Google Cloud's metadata server (through the VM's search domain)",
    "instance-data": "the AWS EC2 instance metadata service",
    "instance-data.ec2.internal": "the AWS EC2 instance metadata service",
    "api.metadata.cloud.ibm.com": "IBM Cloud's instance metadata service",
    "metadata.tencentyun.com": "Tencent Cloud's instance metadata service",
    "rancher-metadata": "Rancher's metadata service",
    "kubernetes": "the Kubernetes API server (through the pod's search domain)",
    "kubernetes.default": "the Kubernetes API server",
    "kubernetes.default.svc": "the Kubernetes API server",
}

# A name that is one of these or ends with "." + one of them never names a public host
# (the first that matches gives the reason).
INTERNAL_SUFFIXES: dict[str, str] = {
    "localhost": "always this machine",
    "localdomain": "from this machine's hosts file",
    "cluster.local": "a Kubernetes cluster's own DNS",
    "local": "multicast DNS on the local network",
    "internal": "reserved for private networks: cloud, VPC and Docker host names",
    "home.arpa": "reserved for home networks",
}


def internal_name_reason(host: str) -> str | None:
    """Why ``host`` names an internal service, or None. Case-insensitive; trailing dots ignored."""
    name = host.lower().rstrip(".")
    if name in INTERNAL_HOSTS:
        return f"{name} is {INTERNAL_HOSTS[name]}"
    for suffix, why in INTERNAL_SUFFIXES.items():
        if name == suffix or name.endswith(f".{suffix}"):
            return f"{name} is a .{suffix} name ({why})"
    return None
