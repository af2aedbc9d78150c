package agent

// RegistrationIdle reports whether no registration is scheduled or running:
// what a test waits for before it looks at what the network was told.
func (a *Agent) RegistrationIdle() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.kickTimer == nil && a.kicks == 0 && len(a.regSem) == 0
}

// StandbyChecks counts the rounds of the standby check so far.
func (a *Agent) StandbyChecks() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.standbyChecks
}
