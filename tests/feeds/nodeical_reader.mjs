// Reads an iCalendar feed on stdin with node-ical and prints [[uid, start], ...] as JSON; an
// all-day start is printed as the calendar date node-ical read (YYYY-MM-DD).
import ical from "node-ical";

let text = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { text += chunk; });
process.stdin.on("end", () => {
  const parsed = ical.sync.parseICS(text);
  const pad = (n) => String(n).padStart(2, "0");
  const pairs = Object.values(parsed)
    .filter((component) => component.type === "VEVENT")
    .map((event) => {
      const start = event.start;
      if (!start || Number.isNaN(start.getTime())) {
        throw new Error(`unreadable DTSTART in ${event.uid}`);
      }
      if (start.dateOnly) {
        return [event.uid,
          `${start.getFullYear()}-${pad(start.getMonth() + 1)}-${pad(start.getDate())}`];
      }
      return [event.uid, start.toISOString()];
    });
  process.stdout.write(JSON.stringify(pairs));
});
