import { describe, expect, it } from "vitest";
import { BACKOFF_BASE_MS, BACKOFF_CAP_MS, backoffCeiling, backoffDelay } from "./backoff";

describe("backoff", () => {
  it("doubles from half a second up to the 20 s cap", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7].map(backoffCeiling)).toEqual([
      500, 1000, 2000, 4000, 8000, 16000, 20000, 20000,
    ]);
    expect(backoffCeiling(1000)).toBe(BACKOFF_CAP_MS);
    expect(backoffCeiling(-3)).toBe(BACKOFF_BASE_MS);
  });

  it("draws the delay uniformly below the ceiling (full jitter)", () => {
    expect(backoffDelay(3, () => 0)).toBe(0);
    expect(backoffDelay(3, () => 0.5)).toBe(2000);
    expect(backoffDelay(3, () => 0.999999)).toBeLessThan(4000);
    for (let i = 0; i < 200; i++) {
      const delay = backoffDelay(10);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(BACKOFF_CAP_MS);
    }
  });
});
