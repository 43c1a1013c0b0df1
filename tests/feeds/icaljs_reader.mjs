// Reads an iCalendar feed on stdin with Mozilla's ical.js (Thunderbird's parser) and prints
// [[uid, start], ...] as JSON.
import ICAL from "ical.js";

let text = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { text += chunk; });
process.stdin.on("end", () => {
  const calendar = new ICAL.Component(ICAL.parse(text));
  const pairs = calendar.getAllSubcomponents("vevent").map((vevent) => {
    const event = new ICAL.Event(vevent);
    return [event.uid, event.startDate.toString()];
  });
  process.stdout.write(JSON.stringify(pairs));
});
