import { LabIcon } from '@jupyterlab/ui-components';

import svg from '../style/icons/autoshutdown.svg';

/** A power symbol, themed like JupyterLab's own icons (jp-icon3). */
export const autoShutdownIcon = new LabIcon({ name: 'jupyter-autoshutdown:icon', svgstr: svg });
