// The one archive module every task uses: a streaming zip writer and a safe zip extractor.
export { createZip, type CreateZipOptions, type CreateZipResult } from './write';
export { extractZip, unsafeNameReason, type ExtractZipOptions, type ExtractZipResult } from './extract';
export { listZip, type ZipListing } from './read';
export { isAlreadyCompressed } from './compressible';
export { ArchiveError, type ArchiveErrorCode } from './errors';
