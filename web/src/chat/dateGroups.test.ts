import { describe, expect, it } from "vitest";
import { dateGroup, groupByDate } from "./dateGroups";

const NOW = new Date(2026, 11, 4, 15, 30).getTime();
const at = (days: number, hours = 12) => new Date(2026, 11, 4 - days, hours).toISOString();

describe("date groups", () => {
  it("puts each session in today, yesterday, the previous 7 days or older", () => {
    expect(dateGroup(at(0, 0), NOW)).toBe("Today");
    expect(dateGroup(at(1, 23), NOW)).toBe("Yesterday");
    expect(dateGroup(at(1, 0), NOW)).toBe("Yesterday");
    expect(dateGroup(at(6), NOW)).toBe("Previous 7 days");
    expect(dateGroup(at(30), NOW)).toBe("Older");
    expect(dateGroup(null, NOW)).toBe("Older");
  });

  it("keeps the server's order and names each group once", () => {
    const items = [at(0), at(0), at(1), at(3), at(40)].map((updated_at, n) => ({ id: `s${n}`, updated_at }));
    const groups = groupByDate(items, NOW);
    expect(groups.map((g) => [g.group, g.items.map((i) => i.id)])).toEqual([
      ["Today", ["s0", "s1"]],
      ["Yesterday", ["s2"]],
      ["Previous 7 days", ["s3"]],
      ["Older", ["s4"]],
    ]);
  });
});
