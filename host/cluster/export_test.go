package cluster

// crash stops the manager as a SIGKILL would: no renewal, no hand-over.
func (m *Manager) crash() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	close(m.quit)
	<-m.done
	m.pool.Close()
}
