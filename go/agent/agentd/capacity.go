package agentd

// capacity is the max_instances of every kind that sets one, which the
// agent reports to the network so that it places no more containers of the
// kind here once it holds that many.
func (c *Config) capacity() map[string]int {
	out := map[string]int{}
	c.Kinds.Each(func(name string, k *Kind) {
		if k != nil && k.MaxInstances > 0 {
			out[name] = k.MaxInstances
		}
	})
	if len(out) == 0 {
		return nil
	}
	return out
}
