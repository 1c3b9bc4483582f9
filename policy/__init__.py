"""The istio-mesh policy pack: pure rules (`policy.rules`) and the Pulumi adapter (`policy.__main__`)."""
