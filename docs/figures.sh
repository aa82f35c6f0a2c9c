#!/bin/sh
# Regenerate the figures of docs/ with nabla itself (run from the top of the
# tree after `meson compile -C build`). Graphviz renders the DOT graphs.
set -eu
nabla=${NABLA:-build/nabla}
out=docs/figures
mkdir -p "$out" /tmp/nabla-acts.$$
"$nabla" plot activations --out /tmp/nabla-acts.$$ >/dev/null
for a in sigmoid tanh relu leaky-relu elu softplus gelu swish hard-sigmoid; do
    cp "/tmp/nabla-acts.$$/$a.svg" "$out/act-$a.svg"
done
rm -rf /tmp/nabla-acts.$$
"$nabla" trace '1/(exp(-(w*x+b))+1)' --at x=1,w=0,b=0 --dot "$out/logistic.dot" \
    --svg "$out/logistic-reverse.svg" --html "$out/logistic.html" > "$out/logistic-trace.txt"
"$nabla" trace '1/(exp(-(w*x+b))+1)' --at x=1,w=0,b=0 --svg "$out/logistic-values.svg" \
    --show values > "$out/logistic-trace.txt"
"$nabla" trace '1/(exp(-(w*x+b))+1)' --at x=1,w=0,b=0 --svg "$out/logistic-forward.svg" \
    --show forward --wrt w > "$out/logistic-trace.txt"
"$nabla" trace '(x+y)*z' --at x=-2,y=5,z=-4 > "$out/xyz-trace.txt"
"$nabla" trace 'ln(x) + x^2*y - sin(x*y)' --at x=1.5,y=2 --svg "$out/fanout-reverse.svg" \
    > "$out/fanout-trace.txt"
# the page at a step of the reverse sweep, as a browser shows it
for browser in chromium chromium-browser; do
    if command -v "$browser" >/dev/null 2>&1; then
        "$browser" --headless --no-sandbox --disable-gpu --no-first-run --hide-scrollbars \
            --window-size=1300,860 --screenshot="$out/trace-page.png" \
            "file://$(pwd)/$out/logistic.html#mode=reverse&step=5" 2>/dev/null
        break
    fi
done
if command -v dot >/dev/null 2>&1; then
    dot -Tsvg -o "$out/logistic.svg" "$out/logistic.dot"
    dot -Tsvg -o "$out/layers.svg" "$out/layers.dot"
fi
"$nabla" diff 'sin(x)' --at x=1 --sweep "$out/sweep-sin.svg" >/dev/null
"$nabla" modes --n 1000 --m 1 > "$out/modes-1000x1.txt"
"$nabla" modes --n 1 --m 1000 > "$out/modes-1x1000.txt"
"$nabla" demo --plot "$out/demo-loss.svg" > "$out/demo.txt"
echo "figures written to $out"
