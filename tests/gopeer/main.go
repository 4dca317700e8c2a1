// gopeer is a real golang/groupcache node for groupcached's interop tests
// and benchmarks. It is built in GOPATH mode against Debian's
// golang-github-golang-groupcache-dev (see scripts/build-gopeer).
//
// It mirrors groupcached's command line and user API so tests can drive both
// kinds of node the same way:
//
//	gopeer (-listen ADDR | with LISTEN_FDS=1 and a listener on fd 3) [-self URL] [-peers A,B,...] -group NAME=ORIGIN ...
//	       [-cache-bytes N] [-replicas N] [-base-path P] [-max-idle-per-host N] [-serve-mux]
//	       [-etcd URL,... [-etcd-prefix P] [-etcd-ttl DUR] [-v]]
//	       [-tls-cert F -tls-key F] [-ca F] [-client-cert F -client-key F] [-client-ca F]
//
// With -tls-cert/-tls-key it serves HTTPS; -ca is the CA bundle its pool's
// Transport trusts for https peers, -client-cert/-client-key the client
// certificate it presents to them, and -client-ca makes the peer API
// require a client certificate signed by that CA (users need none).
//
// By default the pool fetches from peers with http.DefaultTransport, which
// keeps at most 2 idle connections per host, as golang/groupcache does out
// of the box. -max-idle-per-host N gives it a transport tuned as a cache's
// user would: DefaultTransport's dialer and timeouts, N idle and at most N
// open connections per peer (groupcached's --max-conns-per-peer bounds its
// pool the same way), no cap on idle connections over all peers, and no
// proxy. scripts/bench runs such "Go tuned" nodes next to default ones.
//
// The HTTPPool is served on its base path, by default without Go's ServeMux,
// so no path cleaning redirects; -serve-mux puts an http.ServeMux in front,
// as NewHTTPPool's http.DefaultServeMux is, which answers 301 to paths that
// cleaning changes (a key with a leading / or //). GET /cache/{group}/{key}
// returns the raw value, GET /stats the groups' Stats and CacheStats as
// JSON, GET /peers the list last passed to the pool's Set as groupcached
// shows it (self, peers, source, and with -etcd the etcd status), GET
// /healthz "ok".
//
// With -etcd the peer list comes from etcd through go/etcdpeers (the pool
// starts as just self, as groupcached's does); SIGINT and SIGTERM revoke the
// lease before the node stops. -v logs etcdpeers' sessions and peer lists to
// stderr.
//
//	gopeer -ring -peers A,B,... [-replicas N]
//
// reads hex-encoded keys from stdin, one per line, and prints each key's
// owner by golang's consistenthash.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/golang/groupcache"
	"github.com/golang/groupcache/consistenthash"
	"groupcached/etcdpeers"
	"groupcached/gonode"
)

// originGetter loads from an HTTP origin URL template, with the same error
// texts as groupcached's origin.
func originGetter(group, template string) groupcache.GetterFunc {
	return func(ctx context.Context, key string, dest groupcache.Sink) error {
		body, _, err := gonode.LoadOrigin(template, group, key)
		if err != nil {
			return err
		}
		return dest.SetBytes(body)
	}
}

// trackedPool passes Set on to the HTTPPool and remembers the list, for
// GET /peers.
type trackedPool struct {
	pool  *groupcache.HTTPPool
	mu    sync.Mutex
	peers []string
}

func (t *trackedPool) Set(peers ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.peers = append([]string(nil), peers...)
	t.pool.Set(peers...)
}

func (t *trackedPool) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.peers...)
}

func ring(peers []string, replicas int) {
	m := consistenthash.New(replicas, nil)
	m.Add(peers...)
	gonode.PrintOwners(m.Get)
}

// certPool reads a PEM CA bundle.
func certPool(path string) *x509.CertPool {
	pem, err := os.ReadFile(path)
	if err != nil {
		log.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		log.Fatalf("%s: no PEM certificates", path)
	}
	return pool
}

// tunedTransport is http.DefaultTransport with its connection pool sized
// for a cache: perHost idle and open connections to each peer, where the
// default keeps only 2 idle and opens a new connection for every request
// beyond them.
func tunedTransport(perHost int) *http.Transport {
	// Cannot panic: DefaultTransport is an *http.Transport unless a program
	// replaces it, and this one does not.
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.MaxIdleConns = 0 // no limit over all peers; each is bounded below
	t.MaxIdleConnsPerHost = perHost
	t.MaxConnsPerHost = perHost
	return t
}

func main() {
	listen := flag.String("listen", "", "address to listen on")
	self := flag.String("self", "", "this node's URL (default http://LISTEN)")
	peerList := flag.String("peers", "", "comma-separated peer URLs, passed to Set in order")
	cacheBytes := flag.Int64("cache-bytes", 64<<20, "cache size per group")
	replicas := flag.Int("replicas", 50, "ring replicas")
	basePath := flag.String("base-path", "/_groupcache/", "peer protocol base path")
	ringMode := flag.Bool("ring", false, "print owners of hex keys read from stdin")
	etcdList := flag.String("etcd", "", "comma-separated etcd endpoints to discover peers through")
	etcdPrefix := flag.String("etcd-prefix", etcdpeers.DefaultPrefix, "etcd key prefix")
	etcdTTL := flag.Duration("etcd-ttl", etcdpeers.DefaultTTL, "lease TTL of this node's registration")
	verbose := flag.Bool("v", false, "log etcd sessions and peer list changes")
	tlsCert := flag.String("tls-cert", "", "serve HTTPS with this PEM certificate")
	tlsKey := flag.String("tls-key", "", "the PEM key of -tls-cert")
	caFile := flag.String("ca", "", "PEM CA bundle trusted for https peers")
	clientCert := flag.String("client-cert", "", "client certificate presented to peers")
	clientKey := flag.String("client-key", "", "the PEM key of -client-cert")
	clientCA := flag.String("client-ca", "", "require peer API clients to present a certificate from this CA")
	serveMux := flag.Bool("serve-mux", false, "serve through an http.ServeMux, as a pool made by NewHTTPPool is (the mux cleans paths and redirects)")
	maxIdlePerHost := flag.Int("max-idle-per-host", 0, "tune the pool's transport: idle and open connections per peer (0: http.DefaultTransport)")
	var groups gonode.GroupFlags
	flag.Var(&groups, "group", "NAME=ORIGIN_TEMPLATE (repeatable)")
	flag.Parse()

	var peers []string
	if *peerList != "" {
		peers = strings.Split(*peerList, ",")
	}
	if *ringMode {
		ring(peers, *replicas)
		return
	}
	if *listen == "" && os.Getenv("LISTEN_FDS") == "" {
		log.Fatal("-listen is required")
	}
	ln, err := gonode.Listener(*listen)
	if err != nil {
		log.Fatal(err)
	}
	if *self == "" {
		scheme := "http://"
		if *tlsCert != "" {
			scheme = "https://"
		}
		*self = scheme + ln.Addr().String() // the real port, also for -listen HOST:0
	}
	if *etcdList != "" && len(peers) > 0 {
		log.Fatal("-etcd and -peers cannot be combined")
	}
	if len(peers) == 0 {
		peers = []string{*self}
	}
	pool := &trackedPool{pool: groupcache.NewHTTPPoolOpts(*self, &groupcache.HTTPPoolOptions{BasePath: *basePath, Replicas: *replicas})}
	// Set copies Transport into each peer's getter: assign it first.
	var transport *http.Transport
	if *maxIdlePerHost > 0 {
		transport = tunedTransport(*maxIdlePerHost)
	}
	if *caFile != "" || *clientCert != "" {
		clientTLS := &tls.Config{}
		if *caFile != "" {
			clientTLS.RootCAs = certPool(*caFile)
		}
		if *clientCert != "" {
			cert, err := tls.LoadX509KeyPair(*clientCert, *clientKey)
			if err != nil {
				log.Fatal(err)
			}
			clientTLS.Certificates = []tls.Certificate{cert}
		}
		if transport == nil {
			transport = &http.Transport{MaxIdleConnsPerHost: 64}
		}
		transport.TLSClientConfig = clientTLS
	}
	if transport != nil {
		pool.pool.Transport = func(context.Context) http.RoundTripper { return transport }
	}
	pool.Set(peers...)
	var registry *etcdpeers.Registry
	if *etcdList != "" {
		logf := func(string, ...interface{}) {}
		if *verbose {
			logf = log.Printf
		}
		registry, err = etcdpeers.Register(*self, pool, etcdpeers.Options{
			Endpoints: strings.Split(*etcdList, ","),
			Prefix:    *etcdPrefix,
			TTL:       *etcdTTL,
			Logf:      logf,
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	byName := map[string]*groupcache.Group{}
	for _, spec := range groups {
		name, origin, ok := strings.Cut(spec, "=")
		if !ok || name == "" {
			log.Fatalf("bad -group %q", spec)
		}
		byName[name] = groupcache.NewGroup(name, *cacheBytes, originGetter(name, origin))
	}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		switch {
		case strings.HasPrefix(path, *basePath):
			if *clientCA != "" && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
				http.Error(w, "client certificate required", http.StatusForbidden)
				return
			}
			pool.pool.ServeHTTP(w, r)
		case path == "/peers":
			peers := map[string]interface{}{"self": *self, "peers": pool.list(), "source": "static"}
			if registry != nil {
				peers["source"] = "etcd"
				peers["etcd"] = registry.Status()
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(peers)
		case path == "/healthz":
			io.WriteString(w, "ok\n")
		case path == "/stats":
			stats := map[string]interface{}{}
			for name, g := range byName {
				stats[name] = map[string]interface{}{
					"Gets": g.Stats.Gets, "CacheHits": g.Stats.CacheHits,
					"PeerLoads": g.Stats.PeerLoads, "PeerErrors": g.Stats.PeerErrors,
					"Loads": g.Stats.Loads, "LoadsDeduped": g.Stats.LoadsDeduped,
					"LocalLoads": g.Stats.LocalLoads, "LocalLoadErrs": g.Stats.LocalLoadErrs,
					"ServerRequests": g.Stats.ServerRequests,
					"MainCache":      g.CacheStats(groupcache.MainCache),
					"HotCache":       g.CacheStats(groupcache.HotCache),
				}
			}
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(map[string]interface{}{"groups": stats})
		case strings.HasPrefix(path, "/cache/"):
			name, key, ok := strings.Cut(strings.TrimPrefix(path, "/cache/"), "/")
			if !ok {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			g := byName[name]
			if g == nil {
				http.Error(w, "no such group: "+name, http.StatusNotFound)
				return
			}
			var value []byte
			if err := g.Get(r.Context(), key, groupcache.AllocatingByteSliceSink(&value)); err != nil {
				http.Error(w, err.Error(), http.StatusBadGateway)
				return
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(value)
		default:
			http.NotFound(w, r)
		}
	})

	fmt.Printf("listening on %s\n", ln.Addr())
	server := &http.Server{Handler: handler}
	if *serveMux {
		// NewHTTPPool registers the pool on http.DefaultServeMux; a ServeMux
		// answers 301 to any request whose decoded path cleaning changes.
		mux := http.NewServeMux()
		mux.Handle("/", handler)
		server.Handler = mux
	}
	if *tlsCert != "" {
		server.TLSConfig = &tls.Config{}
		if *clientCA != "" {
			server.TLSConfig.ClientCAs = certPool(*clientCA)
			server.TLSConfig.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	// Notify before serving: a signal that comes as soon as the node
	// answers must stop it cleanly, not kill it by the default action.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-signals
		if registry != nil {
			registry.Close()
		}
		server.Close()
	}()
	serve := func() error { return server.Serve(ln) }
	if *tlsCert != "" {
		serve = func() error { return server.ServeTLS(ln, *tlsCert, *tlsKey) }
	}
	if err := serve(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
