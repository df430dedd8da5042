import ipaddress

import pytest

from reference_app.webhooks.ssrf import (
    AllowList,
    Resolver,
    UnsafeURL,
    check_url,
    forbidden_reason,
    resolve_checked,
)

BLOCKED_URLS = [
    "ftp://example.com/hook",
    "file:///etc/passwd",
    "gopher://example.com/",
    "javascript:alert(1)",
    "http://user:pass@example.com/hook",
    "http://user@example.com/hook",
    "http:///nohost",
    "http://example.com./hook",
    "http://localhost/hook",
    "http://api.localhost/hook",
    "http://127.0.0.1/hook",
    "http://127.1/hook",
    "http://0177.0.0.1/hook",
    "http://0x7f.0.0.1/hook",
    "http://0x7f000001/hook",
    "http://2130706433/hook",
    "http://0/hook",
    "http://0.0.0.0/hook",
    "http://10.0.0.1/hook",
    "http://172.16.5.4/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/hook",
    "http://100.100.100.200/hook",
    "http://192.0.0.192/hook",
    "http://224.0.0.1/hook",
    "http://240.0.0.1/hook",
    "http://255.255.255.255/hook",
    "http://198.18.0.1/hook",
    "http://[::1]/hook",
    "http://[::]/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://[fd00:ec2::254]/hook",
    "http://[ff02::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:169.254.169.254]/hook",
    "http://[::ffff:7f00:1]/hook",
    "http://[::127.0.0.1]/hook",
    "http://[::10.0.0.1]/hook",
    "http://[2002:7f00:1::]/hook",
    "http://[2002:a9fe:a9fe::1]/hook",
    "http://[64:ff9b::127.0.0.1]/hook",
    "http://[64:ff9b::a9fe:a9fe]/hook",
    "http://[64:ff9b:1::1]/hook",
    "http://[2001::1]/hook",
    "http://[fe80::1%25eth0]/hook",
    "http://example.com:0/hook",
    "http://example.com:99999/hook",
    "http://exa mple.com/hook",
    "http://example.com/\nhook",
    "http://" + "a" * 2100 + ".com/",
    # Internal host names, refused whatever DNS says (most do not resolve where the check runs).
    "http://metadata.google.internal/computeMetadata/v1/",
    "http://METADATA.Google.Internal./computeMetadata/v1/",
    "http://metadata.goog/computeMetadata/v1/",
    "http://metadata/computeMetadata/v1/",
    "http://instance-data/latest/meta-data/",
    "http://instance-data.ec2.internal/latest/meta-data/",
    "http://api.metadata.cloud.ibm.com/metadata/v1/instance",
    "http://metadata.tencentyun.com/latest/meta-data/",
    "http://rancher-metadata/latest/self",
    "https://kubernetes.default.svc/api",
    "https://kubernetes.default.svc.cluster.local/api",
    "http://host.docker.internal/hook",
    "http://ip-10-0-0-1.eu-west-1.compute.internal/hook",
    "http://printer.local/hook",
    "http://router.home.arpa/hook",
    "http://localhost.localdomain/hook",
    "http://LOCALHOST/hook",
    "http://168.63.129.16/machine?comp=goalstate",
]

ALLOWED_URLS = [
    "https://example.com/hook",
    "http://example.com:8080/hook?x=1",
    "https://hooks.example.org/a/b",
    "https://93.184.216.34/hook",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
    "https://[2002:5db8:d822::1]/hook",
    # Public names that merely contain the words.
    "https://metadata.example.com/hook",
    "https://internal.example.com/hook",
    "https://localhost.example.com/hook",
    "https://hooks.example.com/metadata.google.internal",
]


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_submission_check_blocks(url):
    with pytest.raises(UnsafeURL) as raised:
        check_url(url)
    assert str(raised.value)  # a reason the user can act on


@pytest.mark.parametrize("url", ALLOWED_URLS)
def test_submission_check_allows_public_urls(url):
    assert check_url(url) == url


def test_the_table_is_big_enough():
    assert len(BLOCKED_URLS) >= 30


def test_is_global_alone_would_pass_a_nat64_form_of_a_private_address():
    # The reason this module unpacks embedded IPv4 addresses.
    nat64 = ipaddress.IPv6Address("64:ff9b::a00:1")  # 10.0.0.1
    assert nat64.is_global
    assert forbidden_reason(nat64) is not None


def test_reasons_name_the_kind_of_address():
    with pytest.raises(UnsafeURL, match="link-local"):
        check_url("http://169.254.169.254/")
    with pytest.raises(UnsafeURL, match=r"non-standard spelling of the IPv4 address 127\.0\.0\.1"):
        check_url("http://127.1/")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://metadata.google.internal/", "metadata.google.internal is Google Cloud's metadata"),
        ("http://Metadata.Goog./", "metadata.goog is Google Cloud's metadata server"),
        ("http://instance-data/", "the AWS EC2 instance metadata service"),
        ("http://db.internal:5432/", r"db\.internal is a \.internal name \(reserved for private"),
        ("http://nas.local/", r"nas\.local is a \.local name \(multicast DNS"),
        ("http://api.localhost/", r"\.localhost name \(always this machine\)"),
        ("http://localhost/", "localhost is this machine"),
        ("http://168.63.129.16/", "Azure's host address"),
    ],
)
def test_internal_names_are_refused_with_the_reason(url, reason):
    with pytest.raises(UnsafeURL, match=reason) as raised:
        check_url(url)
    assert str(raised.value).endswith(("use a public host", "use a public address"))


def test_allow_list_admits_hosts_and_networks():
    allow = AllowList.parse(["127.0.0.1", "10.0.0.0/8", "receiver.test", " "])
    assert check_url("http://127.0.0.1:9000/hook", allow)
    assert check_url("http://10.1.2.3/hook", allow)
    assert check_url("http://receiver.test/hook", allow)
    with pytest.raises(UnsafeURL):
        check_url("http://192.168.0.1/hook", allow)
    with pytest.raises(UnsafeURL):
        check_url("http://[::1]/hook", allow)


def _resolver(answers: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    return resolve


async def test_send_time_check_blocks_if_any_record_is_private():
    resolver = _resolver({"mixed.example": ["93.184.216.34", "10.0.0.7"]})
    with pytest.raises(UnsafeURL, match=r"10\.0\.0\.7"):
        await resolve_checked("mixed.example", 443, AllowList(), resolver)


async def test_send_time_check_returns_every_public_address():
    resolver = _resolver({"ok.example": ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]})
    addresses = await resolve_checked("ok.example", 443, AllowList(), resolver)
    assert [str(a) for a in addresses] == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


async def test_dns_rebinding_between_check_and_send_is_blocked():
    answers = iter([["93.184.216.34"], ["169.254.169.254"]])

    async def flipping(host, port):
        return next(answers)

    check_url("https://rebind.example/hook")  # the submission check has no DNS to fool
    assert await resolve_checked("rebind.example", 443, AllowList(), flipping)
    with pytest.raises(UnsafeURL, match=r"169\.254\.169\.254"):
        await resolve_checked("rebind.example", 443, AllowList(), flipping)


@pytest.mark.parametrize(
    "host", ["metadata.google.internal", "METADATA.GOOG.", "instance-data", "svc.internal"]
)
async def test_send_time_check_refuses_internal_names_without_asking_dns(host):
    lookups: list[str] = []

    async def public(name: str, port: int) -> list[str]:
        lookups.append(name)
        return ["93.184.216.34"]  # what a hostile or odd resolver might answer

    with pytest.raises(UnsafeURL, match="refused without a DNS lookup"):
        await resolve_checked(host, 80, AllowList(), public)
    assert lookups == []


async def test_an_allow_listed_internal_name_is_resolved_and_sent_to():
    resolver = _resolver({"receiver.internal": ["10.0.0.9"]})
    allow = AllowList.parse(["receiver.internal"])

    assert check_url("http://receiver.internal/hook", allow)
    allowed = await resolve_checked("receiver.internal", 80, allow, resolver)
    assert [str(a) for a in allowed] == ["10.0.0.9"]


async def test_send_time_check_honours_the_allow_list():
    resolver = _resolver({"receiver.test": ["127.0.0.1"]})
    allow = AllowList.parse(["receiver.test"])
    allowed = await resolve_checked("receiver.test", 80, allow, resolver)
    assert [str(a) for a in allowed] == ["127.0.0.1"]
    assert await resolve_checked("127.0.0.1", 80, AllowList.parse(["127.0.0.0/8"]), resolver)
