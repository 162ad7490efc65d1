// The iframe version of the demo: one <ddpm-demo> filling the frame, its attributes taken from
// the query string (embed.html?mode=generate&class=sneaker&autoplay).
import "./embed.js";

const demo = document.createElement("ddpm-demo");
for (const [key, value] of new URLSearchParams(location.search)) demo.setAttribute(key, value);
Object.assign(document.body.style, { margin: "0", background: "#0f1115" });
document.body.append(demo);
