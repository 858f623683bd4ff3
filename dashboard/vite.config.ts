import { defineConfig } from 'vite'
import react from '@vitejs/plugin-react'

// `npm run dev` proxies /api to the local mock (dev/mock-server.mjs, `npm run mock`) or to a real
// management API given by MODELGATE_DEV_API (e.g. http://127.0.0.1:8080).
declare const process: { env: Record<string, string | undefined> }
const apiTarget = process.env.MODELGATE_DEV_API ?? 'http://127.0.0.1:8089'

export default defineConfig({
  plugins: [react()],
  base: '/',
  build: {
    outDir: '../management_api/static',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    proxy: { '/api': { target: apiTarget, changeOrigin: true } },
  },
})
