import { useEffect, useRef } from "react";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

/** A small uPlot time-series chart: one line over the last 15 minutes. */
export function Sparkline({ label, times, values }: { label: string; times: number[]; values: (number | null)[] }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    if (!box.current) return;
    const options: uPlot.Options = {
      width: 220,
      height: 70,
      legend: { show: false },
      cursor: { show: false },
      axes: [{ show: false }, { show: false }],
      scales: { x: { time: true } },
      series: [{}, { label, stroke: "#3b5bdb", width: 1.5, fill: "rgba(59, 91, 219, 0.12)" }],
    };
    plot.current = new uPlot(options, [[], []], box.current);
    return () => {
      plot.current?.destroy();
      plot.current = null;
    };
  }, [label]);

  useEffect(() => {
    plot.current?.setData([times, values]);
  }, [times, values]);

  return (
    <figure className="spark">
      <div ref={box} role="img" aria-label={`${label}, last 15 minutes`} />
      <figcaption>{label}</figcaption>
    </figure>
  );
}
