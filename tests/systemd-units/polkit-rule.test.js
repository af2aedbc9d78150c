// Runs packaging/systemd/50-huly-agent.rules against a stand-in of polkit's
// JavaScript API and checks what it grants. Usage: node polkit-rule.test.js RULEFILE
"use strict";
const fs = require("fs");
const vm = require("vm");

const rules = [];
const polkit = {
  Result: { YES: "yes", NO: "no", NOT_HANDLED: null },
  addRule: (f) => rules.push(f),
};
vm.runInNewContext(fs.readFileSync(process.argv[2], "utf8"), { polkit });

function decide(user, id, details) {
  const action = { id, lookup: (k) => details[k] };
  for (const r of rules) {
    const v = r(action, { user });
    if (v !== null && v !== undefined) return v;
  }
  return null;
}

const cases = [
  ["huly-agent", "org.freedesktop.systemd1.manage-units", { unit: "huly-c-echo-1a2b3c4d.service", verb: "start" }, "yes"],
  ["huly-agent", "org.freedesktop.systemd1.manage-units", { unit: "huly-c-web-1a2b3c4d.scope", verb: "stop" }, "yes"],
  ["huly-agent", "org.freedesktop.systemd1.manage-units", { unit: "sshd.service", verb: "stop" }, null],
  ["huly-agent", "org.freedesktop.systemd1.manage-units", { unit: "huly-network.service", verb: "stop" }, null],
  ["huly-agent", "org.freedesktop.systemd1.manage-units", { unit: "huly-c-x.service/../sshd.service" }, null],
  ["huly-agent", "org.freedesktop.systemd1.manage-units", {}, null],
  ["huly-agent", "org.freedesktop.systemd1.manage-unit-files", { unit: "huly-c-x.service" }, null],
  ["huly-agent", "org.freedesktop.systemd1.reload-daemon", {}, null],
  ["huly-agent", "org.freedesktop.machine1.manage-machines", { machine: "huly-web-1a2b3c4d", verb: "terminate" }, "yes"],
  ["huly-agent", "org.freedesktop.machine1.manage-machines", { name: "huly-web-1a2b3c4d", verb: "unregister" }, "yes"],
  ["huly-agent", "org.freedesktop.machine1.manage-machines", { machine: "debian", verb: "terminate" }, null],
  ["huly-agent", "org.freedesktop.machine1.create-machine", { machine: "huly-web-1" }, null],
  ["someone", "org.freedesktop.systemd1.manage-units", { unit: "huly-c-echo-1.service" }, null],
  ["someone", "org.freedesktop.machine1.manage-machines", { machine: "huly-web-1" }, null],
];

let failed = 0;
for (const [user, id, details, want] of cases) {
  const got = decide(user, id, details);
  if (got !== want) {
    failed++;
    console.error(`FAIL: ${user} ${id} ${JSON.stringify(details)}: got ${got}, want ${want}`);
  }
}
console.log(`polkit-rule: ${cases.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
