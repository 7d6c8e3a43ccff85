// Command etcd is the real etcd server (go.etcd.io/etcd/server/v3), built here so that the tests
// run kube-apiserver against the same etcd a cluster uses. It takes etcd's own flags.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
