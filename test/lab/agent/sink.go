package main

// The event publisher, shaped like Talos's EventsSinkController: every event of this boot is kept
// in order; a worker sends them one by one with the siderolink EventSinkService client over
// plain-text gRPC (h2c); a failed Publish is retried with backoff, resuming at the first event not
// acknowledged (at-least-once, in order, the same id on every retry). A new endpoint (the
// config's EventSinkConfig) replays the whole boot's events to it, as Talos's controller does.

import (
	"context"
	"sync"
	"time"

	"github.com/rs/xid"
	"github.com/siderolabs/siderolink/api/events"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

type queued struct {
	id  string
	msg *anypb.Any
}

type Publisher struct {
	mu       sync.Mutex
	changed  *sync.Cond
	endpoint string
	epoch    int // bumped on every endpoint change
	events   []queued
	next     int // first event not yet acknowledged by endpoint
}

func NewPublisher(endpoint string) *Publisher {
	p := &Publisher{endpoint: endpoint}
	p.changed = sync.NewCond(&p.mu)
	go p.run()
	return p
}

// Publish queues events; they are sent in order by the worker.
func (p *Publisher) Publish(msgs ...proto.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			say("event sink: cannot encode %T: %v", m, err)
			continue
		}
		p.events = append(p.events, queued{id: xid.New().String(), msg: a})
	}
	p.changed.Broadcast()
}

// SetEndpoint switches to another sink; the boot's events are sent to it from the first.
func (p *Publisher) SetEndpoint(endpoint string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if endpoint == p.endpoint {
		return
	}
	say("event sink: endpoint %s (from the config's EventSinkConfig); replaying this boot's %d events", endpoint, len(p.events))
	p.endpoint, p.next = endpoint, 0
	p.epoch++
	p.changed.Broadcast()
}

// Drain waits until every queued event is acknowledged, at most timeout (Talos gives its
// controllers 10 s before a reboot). Reports whether everything was delivered.
func (p *Publisher) Drain(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		done := p.endpoint != "" && p.next == len(p.events)
		p.mu.Unlock()
		if done {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

func (p *Publisher) run() {
	var (
		conn     *grpc.ClientConn
		client   events.EventSinkServiceClient
		connFor  = -1
		backoff  = 250 * time.Millisecond
		failures = 0
	)
	for {
		p.mu.Lock()
		for p.endpoint == "" || p.next >= len(p.events) {
			p.changed.Wait()
		}
		endpoint, epoch, index, ev := p.endpoint, p.epoch, p.next, p.events[p.next]
		p.mu.Unlock()

		if connFor != epoch {
			if conn != nil {
				conn.Close()
			}
			var err error
			conn, err = grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				say("event sink: bad endpoint %q: %v", endpoint, err)
				time.Sleep(5 * time.Second)
				continue
			}
			client, connFor = events.NewEventSinkServiceClient(conn), epoch
		}

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := client.Publish(ctx, &events.EventRequest{Id: ev.id, Data: ev.msg})
		cancel()
		if err != nil {
			failures++
			if failures == 1 || failures%10 == 0 {
				say("event sink %s: publish failed (%d times so far), retrying: %v", endpoint, failures, err)
			}
			time.Sleep(backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		if failures > 0 {
			say("event sink %s: delivering again after %d failed attempts", endpoint, failures)
		}
		failures, backoff = 0, 250*time.Millisecond
		p.mu.Lock()
		if p.epoch == epoch && p.next == index {
			p.next++
		}
		p.mu.Unlock()
	}
}
