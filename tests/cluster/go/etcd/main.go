// Command etcd is upstream etcd's server main (go.etcd.io/etcd/server/v3/etcdmain),
// built from a wrapper module so that etcd's own go.mod replaces can be pinned here.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
