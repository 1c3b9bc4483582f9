"""istio-mesh: Istio, sidecar injection, addons and dashboards on this stack's cluster."""

from pathlib import Path

import pulumi

from components.addons import AddonError, prepare_addons
from components.cluster import cluster_provider
from components.config import load_config, secret_value
from components.gateway_api_source import GatewayApiSourceError, prepare_gateway_api
from components.mesh import Mesh

PROJECT_DIR = Path(__file__).resolve().parent

config = load_config(PROJECT_DIR)
try:
    addon_objects = prepare_addons(config, PROJECT_DIR)
except AddonError as error:
    raise pulumi.RunError(str(error)) from None
try:
    gateway_api_objects = prepare_gateway_api(config.gateway_api, PROJECT_DIR)
except GatewayApiSourceError as error:
    raise pulumi.RunError(str(error)) from None
provider = cluster_provider("cluster", config.cluster)
mesh = Mesh(
    "istio-mesh",
    config,
    addon_objects,
    grafana_admin_password=secret_value("grafanaAdminPassword"),
    # Unset (or empty): the stack generates Kiali's key once (components/mesh.py).
    kiali_signing_key=secret_value("kialiSigningKey") if config.kiali_signing_key else None,
    gateway_api_objects=gateway_api_objects,
    opts=pulumi.ResourceOptions(providers=[provider]),
)
for name, value in mesh.outputs.items():
    pulumi.export(name, value)
