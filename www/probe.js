// Does a WebGPU canvas really show what is drawn on it here? Some browsers (headless ones, some
// drivers) accept the canvas but show nothing, or lose every device of the context when it is
// configured; so this runs in a throwaway worker before the model's worker starts.
async function probe() {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) return false;
  const device = await adapter.requestDevice();
  const canvas = new OffscreenCanvas(4, 4);
  const context = canvas.getContext("webgpu");
  context.configure({ device, format: navigator.gpu.getPreferredCanvasFormat(), alphaMode: "opaque" });
  const encoder = device.createCommandEncoder();
  encoder
    .beginRenderPass({
      colorAttachments: [{ view: context.getCurrentTexture().createView(), loadOp: "clear", storeOp: "store", clearValue: { r: 1, g: 0.5, b: 0, a: 1 } }],
    })
    .end();
  device.queue.submit([encoder.finish()]);
  await device.queue.onSubmittedWorkDone();
  const ctx = new OffscreenCanvas(4, 4).getContext("2d");
  ctx.drawImage(canvas.transferToImageBitmap(), 0, 0);
  const [r, g, b] = ctx.getImageData(1, 1, 1, 1).data;
  device.destroy();
  return r > 240 && Math.abs(g - 128) < 8 && b < 16;
}
probe().then(
  (ok) => postMessage(ok),
  () => postMessage(false),
);
