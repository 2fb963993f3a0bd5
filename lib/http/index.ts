/**
 * lib/http: the neutral transport every service client builds on (Kudu in lib/kudu, Azure
 * Resource Manager and Microsoft Entra ID in lib/azure). It knows requests, retries, deadlines,
 * bodies, proxies and certificates; it knows no service, and its errors carry facts, not advice.
 */
export * from './body';
export * from './errors';
export * from './network';
export * from './transport';
