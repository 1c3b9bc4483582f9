"""Pinned sha256 sums of Istio's ``samples/addons/<addon>.yaml``, keyed by (Istio version, addon).

Downloaded addon manifests are applied to the cluster with cluster-wide RBAC, so a URL source is only
trusted when the bytes match a sum recorded here; a changed or tampered file then fails loudly
instead of being installed.
"""

# Computed from the istio/istio release tags (the file at each tag, not a branch, so the sum is stable).
# To support a new release, add one line per addon with the output of
#   curl -sL https://raw.githubusercontent.com/istio/istio/<version>/samples/addons/<addon>.yaml | sha256sum
# for all five addons, otherwise a deploy of that release stops at the first addon without a sum.

from collections.abc import Mapping
from types import MappingProxyType

# Read-only so no caller can loosen verification at runtime by inserting a sum for a file it fetched.
ADDON_SHA256: Mapping[tuple[str, str], str] = MappingProxyType(
    {
        ("1.20.8", "prometheus"): "87dfa1a3f329ccbcae0dc038a13c8f3889fb065802285dfebfeee4900b461d60",
        ("1.20.8", "grafana"): "f8ee2930a53c77cc74f851667ca0aa12c2d3a3c6b07a6c2a752f80a6b2e46838",
        ("1.20.8", "jaeger"): "f621b55fcbb2dfd4cf5577ee532017d9cde422d98ab640bca0617099812cf52a",
        ("1.20.8", "kiali"): "31afff1c4fd5e731c182c1702629c2230514eef69c43e8afb61bc9bbe099525e",
        ("1.20.8", "loki"): "349b4265f71ce6d5b05ceb15131bef3fad8f3594c97e38795645a8b3c563e9fd",
        ("1.21.6", "prometheus"): "e4fc160cf898a5b8c21d0688ab80aa61f1eb7bf2e3e1c9791dea00ea749cc79c",
        ("1.21.6", "grafana"): "e93a196e2b9aa2f2d8c85d786c8fd64713b69ae9a35a3299320a779b1bf1733f",
        ("1.21.6", "jaeger"): "f621b55fcbb2dfd4cf5577ee532017d9cde422d98ab640bca0617099812cf52a",
        ("1.21.6", "kiali"): "19586b14d05f91af3820d851c3cdaf2793702497e3c5740afac89e22e5a0bd5d",
        ("1.21.6", "loki"): "349b4265f71ce6d5b05ceb15131bef3fad8f3594c97e38795645a8b3c563e9fd",
        ("1.22.8", "prometheus"): "145fc638aa01a7ecd3c299c64155a234d5c08606cbea621502d44a768db5d1f8",
        ("1.22.8", "grafana"): "2b1a9bb91d7029f215911da046be18b55299473fdb5a788a423a22d2aba90e03",
        ("1.22.8", "jaeger"): "945a505af06df7c751344a53b2c8ba3984f23e38dced453019a808ee9ddb8b69",
        ("1.22.8", "kiali"): "db722aba16d1db32cb2f485dc26b6fe9f11a46dca46fb019db5c810b594dc694",
        ("1.22.8", "loki"): "845e6bb233d8a66776300ed030a938d4e5d6527264cf02ab07e7da5335249111",
        ("1.23.6", "prometheus"): "13544073aeb44c30faea27d403f3dd5f56c366f6788fd9f1a31e0835610d84b7",
        ("1.23.6", "grafana"): "5dfed3cb3fe60bc11f2980c9169b5193c833d0f5d9a7315bf1d9344ded901e40",
        ("1.23.6", "jaeger"): "91b8f0f8e79604a54b03cf95dca3aadb07931f6868bbb66126107bdbc0179619",
        ("1.23.6", "kiali"): "19dc6e9243afc9e3e11aacfaedcee5dbfc5bce1a506f5e65078160217a464b38",
        ("1.23.6", "loki"): "b521270af54367404ddfed2f26ebbcdf306681f1f36f18937f76221f1318c4cd",
        ("1.24.6", "prometheus"): "b8942a843d65308b9b1c8826064a587ba047f06c62a3e21a3b5f8690c26a75fd",
        ("1.24.6", "grafana"): "443595a49daf12ccaf060099a1bb7e3d8f3ff58126cf123a152af5126ba548f4",
        ("1.24.6", "jaeger"): "91b8f0f8e79604a54b03cf95dca3aadb07931f6868bbb66126107bdbc0179619",
        ("1.24.6", "kiali"): "b4bba344268022bc94a5192b400f618afd7ce00871b59ee50d10f50baadf83d4",
        ("1.24.6", "loki"): "4b4d55813a62e2faea3b79d5b89c7875d32ac831252d900ea01774ec77a41d75",
        ("1.25.5", "prometheus"): "30189860661d9cdffa2bc0e0bc032b40c204e424e3d649f28b83eb9120999c12",
        ("1.25.5", "grafana"): "3275e670fa62f80af3dd5cb07303553cd62d6ed74269f7bb3d62d1e24ba02584",
        ("1.25.5", "jaeger"): "d149ae1c0f16e6e4e5de2e17d1f26a6c40b60f6043a959a528676c5c13470d97",
        ("1.25.5", "kiali"): "354747cb3dd8a31e8784093c3f555919aa94d5fbfb551cb8af5cab253ac19b4a",
        ("1.25.5", "loki"): "36218b6018fdbd39912c8a7728b3439274aebd873e8f9fd30e77caed6f59d647",
        ("1.26.8", "prometheus"): "1ece1dfdd677165d16c39953dc8fcecbde102df038da013b1505ae6df949f829",
        ("1.26.8", "grafana"): "8a6886c286730df3ba91d6db3d428d6e3c773ff994b075710ea8161ca00bc475",
        ("1.26.8", "jaeger"): "b0cc9b7f464c1de13c6cf32b0743b9208fa41d243b701b9ab9b1180fcd55729a",
        ("1.26.8", "kiali"): "aa690312fbc24511890993bec993e8aa81cfec1a92ce4e49a911d92da1a4f6e2",
        ("1.26.8", "loki"): "69e135a58fca4f333c38418d95826e9517372093c526e69f44943c636ef579e2",
        ("1.27.9", "prometheus"): "1793159e8214250a2740190805ea006fb8d0872ceeb95e6a99f321ea7cfecc72",
        ("1.27.9", "grafana"): "2f261fa4c32b12b52bd52b29137f905ce63c70bac221d803197b6cf10591ecaf",
        ("1.27.9", "jaeger"): "7ccc76151cdd3551c20842ad5be609909befb84f31a6aa277ad9d22ef350de59",
        ("1.27.9", "kiali"): "af8778155090e3f635d37da599d02d4d5f1aba64e40598a2455b71c10c4a019b",
        ("1.27.9", "loki"): "bd02bb81343222de5d29e4e44e2fa74078e6c044db6c63fe5f415cf34deb45ed",
        ("1.28.10", "prometheus"): "e0d4363460228706e42bd50649cf431eadf33e5137da000aa30957bbc55764bb",
        ("1.28.10", "grafana"): "9ff0c93bcd81a7102a44cafa7eaecf46cf32aa805584973f7fad0356c5735402",
        ("1.28.10", "jaeger"): "7ccc76151cdd3551c20842ad5be609909befb84f31a6aa277ad9d22ef350de59",
        ("1.28.10", "kiali"): "f81e06811641549cfe622d1de525f186afed6716c594abc39a8a6e181762f53c",
        ("1.28.10", "loki"): "52ada6ea0461df9f44c5d73456492ec86b8bbd0f503ba1297829d778e93b6c78",
        ("1.29.6", "prometheus"): "6afac24f3063830157bea0ed2f997ab118bab2013d30c67f7dc63b3ec05b9894",
        ("1.29.6", "grafana"): "9ff0c93bcd81a7102a44cafa7eaecf46cf32aa805584973f7fad0356c5735402",
        ("1.29.6", "jaeger"): "0bb1cc1dfa2cc4af25c0747b29d6536a9d7c05270f8a2271804910c6c57ed733",
        ("1.29.6", "kiali"): "47e1d01f093bc2a4a63e8b9d59d63d8c85a0da546c82a4cf8105ee9a66c5ccc0",
        ("1.29.6", "loki"): "15849729d694d21e7b6b1c661349467ca6440d2b6d15b52c9ec8beda8fac47b1",
        ("1.30.3", "prometheus"): "429abcb6cb74b6045d8787c66add166aa6ca77889835107bdea8dfb46dd1eca8",
        ("1.30.3", "grafana"): "1f9ee332c828a29e7c4418661b80d7b766fba2d8a5234b892071ef0a0361b13e",
        ("1.30.3", "jaeger"): "0bb1cc1dfa2cc4af25c0747b29d6536a9d7c05270f8a2271804910c6c57ed733",
        ("1.30.3", "kiali"): "0784c980cbffb4ea64e28268dc49df707b58127b5de689186f07c12dc739c38a",
        ("1.30.3", "loki"): "d0b1495e04d1501e8b25be1217e85ba539af55822274a67545270146b0f8823c",
    }
)
