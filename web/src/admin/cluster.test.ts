import { describe, expect, it } from "vitest";
import { formatSeconds } from "./cluster";

describe("formatSeconds", () => {
  it("says nothing was observed with a dash", () => {
    expect(formatSeconds(null)).toBe("–");
  });
  it("gives milliseconds under a second and seconds above", () => {
    expect(formatSeconds(0.0125)).toBe("13 ms");
    expect(formatSeconds(0.85)).toBe("850 ms");
    expect(formatSeconds(2.46)).toBe("2.5 s");
  });
});
