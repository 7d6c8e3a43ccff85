"""Tests of the fake kube-apiserver (meshsync_k8s.fake_apiserver)."""
