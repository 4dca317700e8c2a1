// example is the smallest Go groupcache server that finds its peers
// through etcd with etcdpeers, next to groupcached nodes started with
// --etcd and the same endpoints:
//
//	example -listen 127.0.0.1:9001 -etcd http://127.0.0.1:2379
//	curl 127.0.0.1:9001/demo/hello     # hello, loaded by the key's owner
//
// Its one group, demo, loads a key's value as the key itself, as
// groupcached's built-in `demo=echo` origin does. SIGINT or SIGTERM revokes
// its lease, so the other nodes drop it at once, and stops it.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/golang/groupcache"
	"groupcached/etcdpeers"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9001", "address to listen on")
	self := flag.String("self", "", "this node's URL as peers reach it (default http://LISTEN)")
	endpoints := flag.String("etcd", "http://127.0.0.1:2379", "etcd endpoints, comma-separated")
	flag.Parse()
	if *self == "" {
		*self = "http://" + *listen
	}

	// Listen before registering, so peers that learn of this node can connect.
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	pool := groupcache.NewHTTPPoolOpts(*self, nil)
	registry, err := etcdpeers.Register(*self, pool, etcdpeers.Options{
		Endpoints: strings.Split(*endpoints, ","),
	})
	if err != nil {
		log.Fatal(err)
	}

	demo := groupcache.NewGroup("demo", 64<<20, groupcache.GetterFunc(
		func(_ context.Context, key string, dest groupcache.Sink) error {
			return dest.SetString(key)
		}))
	mux := http.NewServeMux()
	mux.Handle("/_groupcache/", pool)
	mux.HandleFunc("/demo/", func(w http.ResponseWriter, r *http.Request) {
		var value []byte
		key := strings.TrimPrefix(r.URL.Path, "/demo/")
		if err := demo.Get(r.Context(), key, groupcache.AllocatingByteSliceSink(&value)); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Write(value)
	})
	server := &http.Server{Handler: mux}

	// Notify before serving: a signal that comes as soon as the node
	// answers must stop it cleanly, not kill it by the default action.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-signals
		registry.Close() // revoke first, so no peer sends us keys we no longer serve
		server.Close()
	}()
	if err := server.Serve(ln); err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
