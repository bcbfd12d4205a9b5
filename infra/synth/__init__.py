"""Synthesis: the real Pulumi program under the SDK's mock runtime, recorded as the synth record."""
