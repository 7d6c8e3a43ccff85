"""Tests of the fake kube-apiserver (meshsync_testkit.fake_apiserver)."""
